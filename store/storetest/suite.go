// Package storetest is the conformance suite of the run store contract:
// every store.Store implementation runs Run in its tests, with the same
// checks, so the flow package can rely on one behaviour whatever the store.
//
// The suite is strict on purpose: its own tests run it against stores that
// each break one promise and check that the matching checks fail.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/store"
)

// Config is how the suite gets stores.
type Config struct {
	// New returns an empty store, closed by the suite at the end of the
	// test. Each call must return a store that shares nothing with the
	// stores of other calls.
	New func(t *testing.T) store.Store
}

// Run runs every check of the contract, each as a subtest named
// "Group/Check", on fresh stores from cfg.New.
func Run(t *testing.T, cfg Config) {
	if cfg.New == nil {
		t.Fatal("storetest: Config.New is nil")
	}
	groups := []struct {
		name   string
		checks []check
	}{
		{"Runs", []check{
			{"CreateAndGet", testCreateAndGet},
			{"CreateTwiceIsExists", testCreateTwice},
			{"UnknownIsNotFound", testUnknownRun},
			{"Filter", testFilter},
		}},
		{"Apply", []check{
			{"RoundTrip", testApplyRoundTrip},
			{"UpsertByKey", testUpsert},
			{"ChangesInOrderAndOnce", testChanges},
			{"UnknownRunIsNotFound", testApplyUnknown},
			{"Fenced", testFenced},
			{"EndsRun", testEndsRun},
		}},
		{"Leases", []check{
			{"AcquireHeldExpireRelease", testLeases},
			{"ConcurrentAcquireOneWins", testConcurrentAcquire},
			{"ExpiredByMatchesAcquire", testExpiredByBoundary},
		}},
		{"Cache", []check{
			{"MissClaimPutHit", testCacheHit},
			{"ClaimHeldByOther", testCacheHeld},
			{"Expiry", testCacheExpiry},
			{"ListAndInvalidate", testCacheList},
			{"ConcurrentClaimOneWins", testConcurrentClaim},
		}},
		{"Retention", []check{
			{"DeleteOldRuns", testRetention},
		}},
		{"Trace", []check{
			{"RunTraceRoundTrip", testRunTrace},
		}},
		{"Concurrency", []check{
			{"ManyWriters", testManyWriters},
		}},
		{"Reservations", reserveChecks},
		{"Limits", limitChecks},
		{"Requests", requestChecks},
		{"Filters", filterChecks},
		{"Close", []check{
			{"AfterCloseIsClosed", testClosed},
		}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.checks {
				t.Run(c.name, func(t *testing.T) {
					s := cfg.New(t)
					t.Cleanup(func() { _ = s.Close() })
					c.fn(t, s)
				})
			}
		})
	}
}

type check struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// stamp is a time with nanoseconds, which every store must keep.
func stamp(sec int) time.Time { return time.Unix(1_800_000_000+int64(sec), 123_456_789) }

func newRun(id string) store.Run {
	return store.Run{ID: id, Flow: "etl", FlowHash: "h1", Params: []byte(`{"day":"mon"}`), State: "Running",
		Created: stamp(0)}
}

func testCreateAndGet(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun("r1")
	r.Owner, r.LeaseExpires = "me", time.Now().Add(time.Hour).Round(0)
	require.NoError(t, s.CreateRun(c, r))
	got, err := s.Run(c, "r1")
	require.NoError(t, err)
	assert.Equal(t, "r1", got.ID)
	assert.Equal(t, "etl", got.Flow)
	assert.Equal(t, "h1", got.FlowHash)
	assert.Equal(t, []byte(`{"day":"mon"}`), got.Params)
	assert.Equal(t, "Running", got.State)
	assert.Equal(t, "me", got.Owner)
	assert.True(t, r.LeaseExpires.Equal(got.LeaseExpires), "lease expiry %v, want %v", got.LeaseExpires, r.LeaseExpires)
	assert.True(t, stamp(0).Equal(got.Created), "created %v, want %v", got.Created, stamp(0))
	assert.False(t, got.Finished())
	assert.True(t, got.Ended.IsZero())
	assert.Error(t, s.CreateRun(c, store.Run{}), "an empty id is refused")
}

func testCreateTwice(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	other := newRun("r1")
	other.Flow = "other"
	err := s.CreateRun(c, other)
	require.ErrorIs(t, err, store.ErrExists)
	got, err := s.Run(c, "r1")
	require.NoError(t, err)
	assert.Equal(t, "etl", got.Flow, "a refused create changes nothing")
}

func testUnknownRun(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.Run(c, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	trs, err := s.TaskRuns(c, "nope")
	require.NoError(t, err)
	assert.Empty(t, trs)
	_, err = s.Acquire(c, "nope", "me", time.Minute)
	assert.ErrorIs(t, err, store.ErrNotFound)
}

func testFilter(t *testing.T, s store.Store) {
	c := ctx(t)
	now := time.Now()
	for i, r := range []store.Run{
		{ID: "a", Flow: "etl", Created: stamp(1)},
		{ID: "b", Flow: "etl", Created: stamp(2), Owner: "live", LeaseExpires: now.Add(time.Hour)},
		{ID: "c", Flow: "other", Created: stamp(3), Owner: "dead", LeaseExpires: now.Add(-time.Hour)},
		{ID: "d", Flow: "etl", Created: stamp(4)},
	} {
		require.NoError(t, s.CreateRun(c, r), "run %d", i)
	}
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "d", Run: &store.RunUpdate{State: "Success", Ended: stamp(5)}}))
	ids := func(f store.RunFilter) []string {
		rs, err := s.Runs(c, f)
		require.NoError(t, err)
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	assert.Equal(t, []string{"a", "b", "c", "d"}, ids(store.RunFilter{}), "oldest first")
	assert.Equal(t, []string{"a", "b", "d"}, ids(store.RunFilter{Flow: "etl"}))
	assert.Equal(t, []string{"a", "b", "c"}, ids(store.RunFilter{Unfinished: true}))
	assert.Equal(t, []string{"a", "c"}, ids(store.RunFilter{Unfinished: true, LeaseExpiredBy: now}))
	assert.Equal(t, []string{"a", "b"}, ids(store.RunFilter{Limit: 2}))
}

func testApplyRoundTrip(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	b := &store.Batch{RunID: "r1",
		TaskRuns: []store.TaskRun{
			{Label: "load", State: "Success", Value: []byte(`[1,2,3]`), Attempts: 2, Start: stamp(1), End: stamp(3), CacheKey: "load/v1/abc"},
			{Label: "map[7]", State: "Failed", ErrClass: "failure", ErrMessage: "boom\nline two", Attempts: 1, Start: stamp(2), End: stamp(4)},
			{Label: "wait", State: "Running", Attempts: 1, Start: stamp(2)},
		},
		Attempts: []store.Attempt{
			{Label: "load", N: 1, State: "Retrying", Start: stamp(1), End: stamp(2), ErrClass: "timeout", ErrMessage: "late", Worker: "pool/3"},
			{Label: "load", N: 2, State: "Success", Start: stamp(2), End: stamp(3), Worker: "pid 42"},
			{Label: "wait", N: 1, State: "Running", Start: stamp(2)},
		},
	}
	require.NoError(t, s.Apply(c, b))
	trs, err := s.TaskRuns(c, "r1")
	require.NoError(t, err)
	require.Len(t, trs, 3)
	byLabel := map[string]store.TaskRun{}
	for _, tr := range trs {
		assert.Equal(t, "r1", tr.RunID)
		byLabel[tr.Label] = tr
	}
	assert.Equal(t, []string{"load", "map[7]", "wait"}, []string{trs[0].Label, trs[1].Label, trs[2].Label}, "ordered by label")
	load := byLabel["load"]
	assert.Equal(t, "Success", load.State)
	assert.Equal(t, []byte(`[1,2,3]`), load.Value)
	assert.Equal(t, 2, load.Attempts)
	assert.Equal(t, "load/v1/abc", load.CacheKey)
	assert.True(t, stamp(1).Equal(load.Start) && stamp(3).Equal(load.End), "times %v..%v", load.Start, load.End)
	failed := byLabel["map[7]"]
	assert.Equal(t, "failure", failed.ErrClass)
	assert.Equal(t, "boom\nline two", failed.ErrMessage)
	assert.Empty(t, failed.Value, "no value for a failure")
	assert.True(t, byLabel["wait"].End.IsZero(), "not final: no end")

	as, err := s.Attempts(c, "r1")
	require.NoError(t, err)
	require.Len(t, as, 3)
	assert.Equal(t, 1, as[0].N)
	assert.Equal(t, "timeout", as[0].ErrClass)
	assert.Equal(t, "late", as[0].ErrMessage)
	assert.Equal(t, "pool/3", as[0].Worker)
	assert.Equal(t, time.Second, as[0].Duration())
	assert.Equal(t, 2, as[1].N)
	assert.Equal(t, "pid 42", as[1].Worker)
	assert.Equal(t, "wait", as[2].Label)
	assert.Zero(t, as[2].Duration(), "still running")
}

func testUpsert(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1",
		TaskRuns: []store.TaskRun{{Label: "t", State: "Running", Attempts: 1, Start: stamp(1)}},
		Attempts: []store.Attempt{{Label: "t", N: 1, State: "Running", Start: stamp(1)}}}))
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1",
		TaskRuns: []store.TaskRun{{Label: "t", State: "Success", Value: []byte(`"ok"`), Attempts: 1, Start: stamp(1), End: stamp(2)}},
		Attempts: []store.Attempt{{Label: "t", N: 1, State: "Success", Start: stamp(1), End: stamp(2), Worker: "w"}}}))
	trs, err := s.TaskRuns(c, "r1")
	require.NoError(t, err)
	require.Len(t, trs, 1, "one task run per label")
	assert.Equal(t, "Success", trs[0].State)
	assert.Equal(t, []byte(`"ok"`), trs[0].Value)
	as, err := s.Attempts(c, "r1")
	require.NoError(t, err)
	require.Len(t, as, 1, "one attempt per number")
	assert.Equal(t, "Success", as[0].State)
	assert.Equal(t, "w", as[0].Worker)

	// One batch with two records of one key: the later one wins.
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1",
		TaskRuns: []store.TaskRun{{Label: "u", State: "Running"}, {Label: "v", State: "Running"}, {Label: "u", State: "Failed", ErrMessage: "x"}},
		Attempts: []store.Attempt{{Label: "u", N: 1, State: "Running"}, {Label: "u", N: 1, State: "Failed"}}}))
	trs, err = s.TaskRuns(c, "r1")
	require.NoError(t, err)
	require.Len(t, trs, 3)
	assert.Equal(t, "Failed", trs[1].State, "the batch's later record of u wins")
	assert.Equal(t, "x", trs[1].ErrMessage)
	as, err = s.Attempts(c, "r1")
	require.NoError(t, err)
	require.Len(t, as, 2)
	assert.Equal(t, "Failed", as[1].State)
}

func testChanges(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	var all []store.Change
	for i := range 30 {
		all = append(all, store.Change{Seq: int64(i + 1), Label: fmt.Sprintf("t%d", i%4), Attempt: i % 3,
			From: "Pending", To: "Running", ErrClass: "failure", ErrMessage: fmt.Sprintf("e%d", i), Time: stamp(i)})
	}
	// Two batches, the second applied twice (a retry after a lost commit).
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Changes: all[:10]}))
	second := &store.Batch{RunID: "r1", Changes: all[10:]}
	require.NoError(t, s.Apply(c, second))
	require.NoError(t, s.Apply(c, second))
	got, err := s.Changes(c, "r1")
	require.NoError(t, err)
	require.Len(t, got, 30, "each change once")
	for i, ch := range got {
		assert.Equal(t, int64(i+1), ch.Seq, "in order")
		assert.Equal(t, all[i].Label, ch.Label)
		assert.Equal(t, all[i].Attempt, ch.Attempt)
		assert.Equal(t, all[i].ErrMessage, ch.ErrMessage)
		assert.Equal(t, "r1", ch.RunID)
		assert.True(t, all[i].Time.Equal(ch.Time))
	}
}

func testApplyUnknown(t *testing.T, s store.Store) {
	c := ctx(t)
	err := s.Apply(c, &store.Batch{RunID: "nope", TaskRuns: []store.TaskRun{{Label: "t", State: "Success"}}})
	require.ErrorIs(t, err, store.ErrNotFound)
	trs, err := s.TaskRuns(c, "nope")
	require.NoError(t, err)
	assert.Empty(t, trs, "nothing written for an unknown run")
}

func testFenced(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun("r1")
	r.Owner, r.LeaseExpires = "a", time.Now().Add(time.Hour)
	require.NoError(t, s.CreateRun(c, r))
	err := s.Apply(c, &store.Batch{RunID: "r1", Owner: "b",
		TaskRuns: []store.TaskRun{{Label: "t", State: "Success"}},
		Changes:  []store.Change{{Seq: 1, Label: "t", From: "Running", To: "Success"}}})
	var le *store.LeaseError
	require.ErrorAs(t, err, &le)
	assert.ErrorIs(t, err, store.ErrLeaseHeld)
	assert.Equal(t, "a", le.Holder)
	trs, err := s.TaskRuns(c, "r1")
	require.NoError(t, err)
	assert.Empty(t, trs, "a fenced batch writes nothing")
	chs, err := s.Changes(c, "r1")
	require.NoError(t, err)
	assert.Empty(t, chs, "a fenced batch writes nothing")
	assert.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Owner: "a", TaskRuns: []store.TaskRun{{Label: "t", State: "Success"}}}))
	assert.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", TaskRuns: []store.TaskRun{{Label: "u", State: "Success"}}}),
		"a batch without an owner is not fenced")
}

func testEndsRun(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	before := time.Now()
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1",
		Run: &store.RunUpdate{State: "Failed", ErrClass: "failure", ErrMessage: "task x failed", Ended: stamp(9)}}))
	got, err := s.Run(c, "r1")
	require.NoError(t, err)
	assert.Equal(t, "Failed", got.State)
	assert.Equal(t, "failure", got.ErrClass)
	assert.Equal(t, "task x failed", got.ErrMessage)
	assert.True(t, got.Finished())
	assert.True(t, stamp(9).Equal(got.Ended))
	assert.False(t, got.Updated.Before(before.Add(-time.Second)), "updated %v is the write's time", got.Updated)
}

func testLeases(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	_, err := s.Acquire(c, "r1", "a", 0)
	require.Error(t, err, "a zero ttl is refused")
	l, err := s.Acquire(c, "r1", "a", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, "a", l.Owner)
	assert.WithinDuration(t, time.Now().Add(time.Hour), l.Expires, time.Minute)
	_, err = s.Acquire(c, "r1", "b", time.Hour)
	var le *store.LeaseError
	require.ErrorAs(t, err, &le, "b cannot take a's live lease")
	assert.Equal(t, "a", le.Holder)
	_, err = s.Acquire(c, "r1", "a", 150*time.Millisecond)
	require.NoError(t, err, "the holder renews (here shortening it)")
	got, err := s.Run(c, "r1")
	require.NoError(t, err)
	assert.Equal(t, "a", got.Owner)
	time.Sleep(250 * time.Millisecond)
	l, err = s.Acquire(c, "r1", "b", time.Hour)
	require.NoError(t, err, "an expired lease can be taken")
	assert.Equal(t, "b", l.Owner)
	require.NoError(t, s.Release(c, "r1", "a"), "releasing a lease one does not hold does nothing")
	got, err = s.Run(c, "r1")
	require.NoError(t, err)
	assert.Equal(t, "b", got.Owner)
	require.NoError(t, s.Release(c, "r1", "b"))
	got, err = s.Run(c, "r1")
	require.NoError(t, err)
	assert.Equal(t, "", got.Owner)
	_, err = s.Acquire(c, "r1", "a", time.Hour)
	assert.NoError(t, err, "a released lease is free")
}

func testConcurrentAcquire(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.Acquire(c, "r1", fmt.Sprintf("owner%d", i), time.Hour) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrLeaseHeld):
			t.Errorf("unexpected error: %v", err)
		}
	}
	assert.Equal(t, 1, won, "exactly one owner gets the lease")
}

func testCacheHit(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	_, hit, err := s.Claim(c, "k", "a", time.Minute)
	require.NoError(t, err)
	assert.False(t, hit, "a new key is a miss, claimed")
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Owner: "a",
		Cache: []store.CacheEntry{{Key: "k", Value: []byte(`42`), Created: stamp(1)}}}))
	e, hit, err := s.Claim(c, "k", "b", time.Minute)
	require.NoError(t, err)
	assert.True(t, hit, "b finds a's value")
	assert.Equal(t, []byte(`42`), e.Value)
	assert.Equal(t, "k", e.Key)
	assert.True(t, stamp(1).Equal(e.Created))
	assert.True(t, e.Expires.IsZero(), "no expiry")
	// Unclaim gives a key back without a value.
	_, hit, err = s.Claim(c, "k2", "a", time.Hour)
	require.NoError(t, err)
	require.False(t, hit)
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Owner: "a", Unclaim: []string{"k2"}}))
	_, hit, err = s.Claim(c, "k2", "b", time.Hour)
	require.NoError(t, err, "an unclaimed key is free")
	assert.False(t, hit)
	entries, err := s.CacheEntries(c, "")
	require.NoError(t, err)
	require.Len(t, entries, 1, "claims are not entries")
	assert.Equal(t, "k", entries[0].Key)
}

func testCacheHeld(t *testing.T, s store.Store) {
	c := ctx(t)
	_, hit, err := s.Claim(c, "k", "a", 150*time.Millisecond)
	require.NoError(t, err)
	require.False(t, hit)
	_, _, err = s.Claim(c, "k", "b", time.Minute)
	var le *store.LeaseError
	require.ErrorAs(t, err, &le, "a holds the claim")
	assert.Equal(t, "a", le.Holder)
	_, hit, err = s.Claim(c, "k", "a", 150*time.Millisecond)
	require.NoError(t, err, "the holder renews its claim")
	assert.False(t, hit)
	time.Sleep(250 * time.Millisecond)
	_, hit, err = s.Claim(c, "k", "b", time.Minute)
	require.NoError(t, err, "an expired claim can be taken")
	assert.False(t, hit)
}

func testCacheExpiry(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Cache: []store.CacheEntry{
		{Key: "short", Value: []byte(`1`), Expires: time.Now().Add(150 * time.Millisecond)},
		{Key: "long", Value: []byte(`2`), Expires: time.Now().Add(time.Hour)},
	}}))
	_, hit, err := s.Claim(c, "short", "a", time.Minute)
	require.NoError(t, err)
	assert.True(t, hit)
	time.Sleep(250 * time.Millisecond)
	_, hit, err = s.Claim(c, "short", "a", time.Minute)
	require.NoError(t, err)
	assert.False(t, hit, "an expired entry is a miss")
	entries, err := s.CacheEntries(c, "")
	require.NoError(t, err)
	require.Len(t, entries, 1, "expired entries are not listed")
	assert.Equal(t, "long", entries[0].Key)
}

func testCacheList(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	var es []store.CacheEntry
	for _, k := range []string{"b/1", "a/2", "a/1", "ab/1"} {
		es = append(es, store.CacheEntry{Key: k, Value: []byte(`"` + k + `"`)})
	}
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Cache: es}))
	keys := func(prefix string) []string {
		got, err := s.CacheEntries(c, prefix)
		require.NoError(t, err)
		var out []string
		for _, e := range got {
			out = append(out, e.Key)
		}
		return out
	}
	assert.Equal(t, []string{"a/1", "a/2", "ab/1", "b/1"}, keys(""), "ordered by key")
	assert.Equal(t, []string{"a/1", "a/2"}, keys("a/"))
	n, err := s.Invalidate(c, "a/")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, []string{"ab/1", "b/1"}, keys(""))
	_, hit, err := s.Claim(c, "a/1", "x", time.Minute)
	require.NoError(t, err)
	assert.False(t, hit, "an invalidated entry is a miss")
	n, err = s.Invalidate(c, "")
	require.NoError(t, err)
	assert.Equal(t, 2, n, "claims are not counted")
	assert.Empty(t, keys(""))
}

func testConcurrentClaim(t *testing.T, s store.Store) {
	c := ctx(t)
	const n = 8
	type res struct {
		hit bool
		err error
	}
	out := make([]res, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, hit, err := s.Claim(c, "shared", fmt.Sprintf("owner%d", i), time.Hour)
			out[i] = res{hit, err}
		})
	}
	wg.Wait()
	claimed := 0
	for _, r := range out {
		switch {
		case r.err == nil && !r.hit:
			claimed++
		case r.err != nil && !errors.Is(r.err, store.ErrLeaseHeld):
			t.Errorf("unexpected error: %v", r.err)
		}
	}
	assert.Equal(t, 1, claimed, "exactly one claimer computes the value")
}

func testRetention(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, id := range []string{"old", "leased"} {
		r := newRun(id)
		if id == "leased" {
			r.Owner, r.LeaseExpires = "a", time.Now().Add(time.Hour)
		}
		require.NoError(t, s.CreateRun(c, r))
		require.NoError(t, s.Apply(c, &store.Batch{RunID: id,
			TaskRuns: []store.TaskRun{{Label: "t", State: "Success"}},
			Attempts: []store.Attempt{{Label: "t", N: 1, State: "Success"}},
			Changes:  []store.Change{{Seq: 1, Label: "t", From: "Running", To: "Success"}}}))
	}
	time.Sleep(20 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, s.CreateRun(c, newRun("new")))
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "new", TaskRuns: []store.TaskRun{{Label: "t", State: "Success"}}}))
	n, err := s.DeleteRuns(c, cutoff)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only the old, unleased run")
	_, err = s.Run(c, "old")
	assert.ErrorIs(t, err, store.ErrNotFound)
	for _, id := range []string{"leased", "new"} {
		_, err = s.Run(c, id)
		assert.NoError(t, err, "run %s is kept", id)
	}
	trs, err := s.TaskRuns(c, "old")
	require.NoError(t, err)
	assert.Empty(t, trs, "task runs go with their run")
	as, err := s.Attempts(c, "old")
	require.NoError(t, err)
	assert.Empty(t, as, "attempts go with their run")
	chs, err := s.Changes(c, "old")
	require.NoError(t, err)
	assert.Empty(t, chs, "changes go with their run")
	trs, err = s.TaskRuns(c, "new")
	require.NoError(t, err)
	assert.Len(t, trs, 1)
}

func testManyWriters(t *testing.T, s store.Store) {
	c := ctx(t)
	const runs, writers, each = 3, 4, 25
	for r := range runs {
		require.NoError(t, s.CreateRun(c, newRun(fmt.Sprintf("r%d", r))))
	}
	var wg sync.WaitGroup
	errs := make(chan error, runs*writers)
	for r := range runs {
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					label := fmt.Sprintf("w%d-%02d", w, i)
					err := s.Apply(c, &store.Batch{RunID: fmt.Sprintf("r%d", r),
						TaskRuns: []store.TaskRun{{Label: label, State: "Success", Value: []byte(`1`)}},
						Changes:  []store.Change{{Seq: int64(w*each + i + 1), Label: label, From: "Running", To: "Success"}}})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Apply: %v", err)
	}
	for r := range runs {
		trs, err := s.TaskRuns(c, fmt.Sprintf("r%d", r))
		require.NoError(t, err)
		assert.Len(t, trs, writers*each)
		chs, err := s.Changes(c, fmt.Sprintf("r%d", r))
		require.NoError(t, err)
		assert.Len(t, chs, writers*each)
	}
}

func testClosed(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err := s.Run(c, "r1")
	assert.ErrorIs(t, err, store.ErrClosed)
	assert.ErrorIs(t, s.Apply(c, &store.Batch{RunID: "r1"}), store.ErrClosed)
	assert.ErrorIs(t, s.CreateRun(c, newRun("r2")), store.ErrClosed)
}
