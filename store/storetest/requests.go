package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/store"
)

// requestChecks are the checks of RequestCancel, RequestRetry and the run
// filters the dashboard and the CLI use.
var requestChecks = []check{
	{"CancelPendingUntilEnd", testCancelRequest},
	{"CancelRefusals", testCancelRefusals},
	{"RetryPendingUntilRestart", testRetryRequest},
	{"RetryRefusals", testRetryRefusals},
	{"ListedAndDeleted", testRequestsListedAndDeleted},
	{"CancelRacesEnd", testCancelRacesEnd},
}

var filterChecks = []check{
	{"StatesAndTimes", testFilterStatesTimes},
	{"NewestWithLimit", testFilterNewest},
}

func end(t *testing.T, s store.Store, id, state string) {
	t.Helper()
	require.NoError(t, s.Apply(ctx(t), &store.Batch{RunID: id, Run: &store.RunUpdate{State: state, Ended: stamp(9)}}))
}

func get(t *testing.T, s store.Store, id string) store.Run {
	t.Helper()
	r, err := s.Run(ctx(t), id)
	require.NoError(t, err)
	return r
}

func testCancelRequest(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	require.NoError(t, s.CreateRun(c, newRun("r2")))
	assert.True(t, get(t, s, "r1").CancelRequested.IsZero(), "no request yet")
	before := time.Now()
	require.NoError(t, s.RequestCancel(c, "r1"))
	first := get(t, s, "r1").CancelRequested
	require.False(t, first.IsZero(), "the request is pending")
	assert.WithinDuration(t, before, first, time.Minute, "the request's time")
	assert.True(t, get(t, s, "r1").RetryRequested.IsZero(), "a cancel is not a retry")
	assert.True(t, get(t, s, "r2").CancelRequested.IsZero(), "another run has no request")
	time.Sleep(2 * time.Millisecond)
	require.NoError(t, s.RequestCancel(c, "r1"), "requesting again is no error")
	assert.True(t, first.Equal(get(t, s, "r1").CancelRequested), "requesting again keeps the first time")
	// A batch that does not end the run leaves the request alone.
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", TaskRuns: []store.TaskRun{{Label: "a", State: "Running"}}}))
	assert.False(t, get(t, s, "r1").CancelRequested.IsZero(), "still pending while the run goes on")
	end(t, s, "r1", "Cancelled")
	assert.True(t, get(t, s, "r1").CancelRequested.IsZero(), "the run's end clears the request")
}

func testCancelRefusals(t *testing.T, s store.Store) {
	c := ctx(t)
	err := s.RequestCancel(c, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	end(t, s, "r1", "Success")
	err = s.RequestCancel(c, "r1")
	require.ErrorIs(t, err, store.ErrFinished)
	var re *store.RequestError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, store.RequestCancelKind, re.Request)
	assert.Equal(t, "r1", re.RunID)
	assert.Equal(t, "Success", re.State)
	assert.False(t, errors.Is(err, store.ErrNotRetryable))
	assert.True(t, get(t, s, "r1").CancelRequested.IsZero(), "a refused request records nothing")
}

func testRetryRequest(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, state := range []string{"Failed", "Cancelled", "TimedOut"} {
		require.NoError(t, s.CreateRun(c, newRun(state)))
		end(t, s, state, state)
		before := time.Now()
		require.NoError(t, s.RequestRetry(c, state), "a %s run can be retried", state)
		first := get(t, s, state).RetryRequested
		require.False(t, first.IsZero(), "the request is pending")
		assert.WithinDuration(t, before, first, time.Minute)
		assert.True(t, get(t, s, state).CancelRequested.IsZero())
		time.Sleep(2 * time.Millisecond)
		require.NoError(t, s.RequestRetry(c, state), "requesting again is no error")
		assert.True(t, first.Equal(get(t, s, state).RetryRequested), "requesting again keeps the first time")
	}
	// A batch that does not touch the run's state leaves it pending.
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "Failed", TaskRuns: []store.TaskRun{{Label: "a", State: "Failed"}}}))
	assert.False(t, get(t, s, "Failed").RetryRequested.IsZero())
	// Recording the run as running again (a restart) performs it.
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "Failed", Run: &store.RunUpdate{State: "Running"}}))
	r := get(t, s, "Failed")
	assert.True(t, r.RetryRequested.IsZero(), "a restarted run's request is cleared")
	assert.False(t, r.Finished())
	assert.False(t, get(t, s, "Cancelled").RetryRequested.IsZero(), "other runs keep theirs")
}

func testRetryRefusals(t *testing.T, s store.Store) {
	c := ctx(t)
	require.ErrorIs(t, s.RequestRetry(c, "nope"), store.ErrNotFound)
	require.NoError(t, s.CreateRun(c, newRun("running")))
	err := s.RequestRetry(c, "running")
	require.ErrorIs(t, err, store.ErrNotRetryable, "an unfinished run is not retryable")
	var re *store.RequestError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, store.RequestRetryKind, re.Request)
	assert.Equal(t, "Running", re.State)
	for _, state := range []string{"Success", "Skipped"} {
		require.NoError(t, s.CreateRun(c, newRun(state)))
		end(t, s, state, state)
		err := s.RequestRetry(c, state)
		require.ErrorIs(t, err, store.ErrNotRetryable, "a %s run is not retryable", state)
		assert.False(t, errors.Is(err, store.ErrFinished))
		assert.True(t, get(t, s, state).RetryRequested.IsZero(), "a refused request records nothing")
	}
	assert.True(t, get(t, s, "running").RetryRequested.IsZero())
}

func testRequestsListedAndDeleted(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, id := range []string{"a", "b", "c"} {
		r := newRun(id)
		r.Created = stamp(len(id))
		require.NoError(t, s.CreateRun(c, r))
	}
	end(t, s, "a", "Failed")
	end(t, s, "b", "Failed")
	require.NoError(t, s.RequestRetry(c, "b"))
	require.NoError(t, s.RequestCancel(c, "c"))
	rs, err := s.Runs(c, store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, rs, 3)
	byID := map[string]store.Run{}
	for _, r := range rs {
		byID[r.ID] = r
	}
	assert.True(t, byID["a"].RetryRequested.IsZero() && byID["a"].CancelRequested.IsZero(), "Runs: a has none")
	assert.False(t, byID["b"].RetryRequested.IsZero(), "Runs fills RetryRequested")
	assert.False(t, byID["c"].CancelRequested.IsZero(), "Runs fills CancelRequested")
	rs, err = s.Runs(c, store.RunFilter{RetryRequested: true})
	require.NoError(t, err)
	require.Len(t, rs, 1, "RetryRequested selects the runs with a pending retry")
	assert.Equal(t, "b", rs[0].ID)

	// Retention deletes a run's requests with it: a new run of that id
	// starts without any.
	n, err := s.DeleteRuns(c, stamp(100)) // after every write and creation time
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	require.NoError(t, s.CreateRun(c, newRun("c")))
	require.NoError(t, s.CreateRun(c, newRun("b")))
	assert.True(t, get(t, s, "c").CancelRequested.IsZero(), "a deleted run's cancel request went with it")
	assert.True(t, get(t, s, "b").RetryRequested.IsZero(), "a deleted run's retry request went with it")
	rs, err = s.Runs(c, store.RunFilter{RetryRequested: true})
	require.NoError(t, err)
	assert.Empty(t, rs)
}

// testCancelRacesEnd races cancel requests against the batch that ends
// the run: each request either comes first (and the end clears it) or is
// refused with ErrFinished; none outlives the run.
func testCancelRacesEnd(t *testing.T, s store.Store) {
	c := ctx(t)
	const n = 6
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.RequestCancel(c, "r1")
		})
	}
	var endErr error
	wg.Go(func() {
		<-start
		endErr = s.Apply(c, &store.Batch{RunID: "r1", Run: &store.RunUpdate{State: "Success", Ended: stamp(9)}})
	})
	close(start)
	wg.Wait()
	require.NoError(t, endErr)
	for _, err := range errs {
		if err != nil {
			assert.ErrorIs(t, err, store.ErrFinished)
		}
	}
	r := get(t, s, "r1")
	assert.True(t, r.Finished())
	assert.True(t, r.CancelRequested.IsZero(), "no request outlives the run's end")
	assert.ErrorIs(t, s.RequestCancel(c, "r1"), store.ErrFinished)
}

func ids(t *testing.T, s store.Store, f store.RunFilter) []string {
	t.Helper()
	rs, err := s.Runs(ctx(t), f)
	require.NoError(t, err)
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testFilterStatesTimes(t *testing.T, s store.Store) {
	c := ctx(t)
	for i, r := range []struct {
		id, state string
	}{{"a", "Running"}, {"b", "Success"}, {"c", "Failed"}, {"d", "Cancelled"}, {"e", "Failed"}} {
		run := newRun(r.id)
		run.Created = stamp(i + 1)
		require.NoError(t, s.CreateRun(c, run))
		if r.state != "Running" {
			end(t, s, r.id, r.state)
		}
	}
	assert.Equal(t, []string{"c", "e"}, ids(t, s, store.RunFilter{States: []string{"Failed"}}))
	assert.Equal(t, []string{"a", "c", "d", "e"}, ids(t, s, store.RunFilter{States: []string{"Failed", "Cancelled", "Running"}}))
	assert.Equal(t, []string{}, ids(t, s, store.RunFilter{States: []string{"TimedOut"}}))
	assert.Equal(t, []string{"a", "b", "c", "d", "e"}, ids(t, s, store.RunFilter{States: []string{}}), "an empty States selects all")
	assert.Equal(t, []string{"b", "c", "d", "e"}, ids(t, s, store.RunFilter{Since: stamp(2)}), "Since is inclusive")
	assert.Equal(t, []string{"a", "b"}, ids(t, s, store.RunFilter{Until: stamp(3)}), "Until is exclusive")
	assert.Equal(t, []string{"b", "c"}, ids(t, s, store.RunFilter{Since: stamp(2), Until: stamp(4)}))
	assert.Equal(t, []string{"c"}, ids(t, s, store.RunFilter{Since: stamp(2), Until: stamp(4), States: []string{"Failed"}}))
	assert.Equal(t, []string{}, ids(t, s, store.RunFilter{Since: stamp(4), Until: stamp(4)}), "an empty interval")
	assert.Equal(t, []string{}, ids(t, s, store.RunFilter{Since: stamp(4), Until: stamp(2)}), "a reversed interval")
	// Nanoseconds count: a run created 1 ns before Since is left out.
	assert.Equal(t, []string{"c", "d", "e"}, ids(t, s, store.RunFilter{Since: stamp(2).Add(time.Nanosecond)}))
	assert.Equal(t, []string{"e"}, ids(t, s, store.RunFilter{Flow: "etl", States: []string{"Failed"}, Since: stamp(4)}))
	assert.Equal(t, []string{}, ids(t, s, store.RunFilter{Flow: "other", States: []string{"Failed"}}))
}

func testFilterNewest(t *testing.T, s store.Store) {
	c := ctx(t)
	for i, id := range []string{"a", "b", "c", "d"} {
		run := newRun(id)
		run.Created = stamp(i / 2) // a, b at one time; c, d at another
		require.NoError(t, s.CreateRun(c, run))
	}
	assert.Equal(t, []string{"a", "b", "c", "d"}, ids(t, s, store.RunFilter{}), "oldest first, ties by id")
	assert.Equal(t, []string{"d", "c", "b", "a"}, ids(t, s, store.RunFilter{Newest: true}), "newest first, ties by id descending")
	assert.Equal(t, []string{"d", "c", "b"}, ids(t, s, store.RunFilter{Newest: true, Limit: 3}), "the most recent three")
	assert.Equal(t, []string{"b", "a"}, ids(t, s, store.RunFilter{Newest: true, Until: stamp(1)}))
}
