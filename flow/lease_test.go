package flow_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

// The lease's timing, exactly: these tests run in testing/synctest
// bubbles, on a real SQLite store opened inside the bubble (the store
// does file I/O and waits only on channels and timers, so the bubble's
// fake clock is the only clock it reads). The Postgres store talks to a
// server over the network, which a bubble cannot wait on; its leases are
// tested on the real clock (TestLeaseRaceOnPostgres below, the crash
// trials, store/storetest's lease cases).

// bubbleStore opens a SQLite store in the bubble; closed when f ends.
func bubbleStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "runs.db"), sqlite.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// bubblePool is a pool whose goroutines live in the bubble.
func bubblePool(t *testing.T) *pool.Executor {
	ex := pool.New(pool.Options{Workers: 2})
	t.Cleanup(func() { assert.NoError(t, ex.Shutdown(context.Background())) })
	return ex
}

// renewals records every Acquire of owner, and the lease it got.
type renewals struct {
	store.Store
	owner string
	mu    sync.Mutex
	at    []time.Time
	until []time.Time
}

func (s *renewals) Acquire(ctx context.Context, id, owner string, ttl time.Duration) (store.Lease, error) {
	now := time.Now()
	l, err := s.Store.Acquire(ctx, id, owner, ttl)
	if err == nil && owner == s.owner {
		s.mu.Lock()
		s.at, s.until = append(s.at, now), append(s.until, l.Expires)
		s.mu.Unlock()
	}
	return l, err
}

func TestHeartbeatRenewsEveryThirdOfTheTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 3 * time.Second
		st := &renewals{Store: bubbleStore(t), owner: "me"}
		long := task.New("long", func(context.Context, int) (int, error) {
			time.Sleep(10*ttl + ttl/6) // fake time: ten TTLs and a half renewal period
			return 1, nil
		}, task.Options{})
		b := flow.New("lease", flow.Options{})
		flow.Add(b, long, flow.Const(0))
		f, err := b.Build()
		require.NoError(t, err)
		start := time.Now()
		_, err = f.Run(context.Background(), bubblePool(t), flow.RunOptions{Store: st, RunID: "r", Owner: "me", LeaseTTL: ttl})
		require.NoError(t, err)
		require.Len(t, st.at, 30, "one renewal per TTL/3 over ten TTLs")
		for k, at := range st.at {
			assert.Equal(t, time.Duration(k+1)*ttl/3, at.Sub(start), "renewal %d", k+1)
			assert.Equal(t, at.Add(ttl), st.until[k], "each renewal extends the lease to now + TTL")
		}
		rec, err := st.Run(context.Background(), "r")
		require.NoError(t, err)
		assert.Empty(t, rec.Owner, "the lease is released when the run ends")
	})
}

// abandoned records, as a process that died leaves it, a run of f whose
// owner "dead" last renewed its lease now, for ttl; nothing of it ran.
func abandoned(t *testing.T, st store.Store, f *flow.Flow, ttl time.Duration) time.Time {
	t.Helper()
	now := time.Now()
	require.NoError(t, st.CreateRun(context.Background(), store.Run{ID: "r", Flow: f.Name(), FlowHash: f.Hash(),
		Params: []byte("{}"), State: "Running", Owner: "dead", LeaseExpires: now.Add(ttl), Created: now}))
	return now.Add(ttl)
}

func countingFlow(t *testing.T, runs *counter) *flow.Flow {
	one := task.New("one", func(context.Context, int) (int, error) { runs.add("one"); return 1, nil }, task.Options{})
	b := flow.New("lease", flow.Options{})
	flow.Add(b, one, flow.Const(0))
	f, err := b.Build()
	require.NoError(t, err)
	return f
}

func TestCrashedOwnersRunIsTakenExactlyAfterTheTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 30 * time.Second
		st := bubbleStore(t)
		var runs counter
		f := countingFlow(t, &runs)
		ex := bubblePool(t)
		ctx := context.Background()
		expires := abandoned(t, st, f, ttl)

		time.Sleep(ttl - time.Nanosecond)
		_, err := f.Resume(ctx, ex, "r", flow.RunOptions{Store: st, Owner: "me"})
		var le *store.LeaseError
		require.ErrorAs(t, err, &le, "a nanosecond before the lease expires")
		assert.Equal(t, "dead", le.Holder)
		assert.True(t, le.Expires.Equal(expires))
		results, err := flow.ResumeExpired(ctx, ex, []*flow.Flow{f}, flow.RunOptions{Store: st, Owner: "me"})
		require.NoError(t, err)
		assert.Empty(t, results, "not expired yet")
		assert.Zero(t, runs.total())

		time.Sleep(time.Nanosecond) // the lease's expiry: it is free from this instant
		results, err = flow.ResumeExpired(ctx, ex, []*flow.Flow{f}, flow.RunOptions{Store: st, Owner: "me"})
		require.NoError(t, err)
		require.Len(t, results, 1, "ResumeExpired finds it the instant it expires")
		assert.Equal(t, "r", results[0].RunID)
		assert.Equal(t, task.Success, results[0].State)
		assert.Equal(t, 1, runs.get("one"))
	})
}

func TestTwoResumersRaceAndExactlyOneDrives(t *testing.T) {
	for _, how := range []string{"Resume", "ResumeExpired"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const ttl = 10 * time.Second
				st := bubbleStore(t)
				var runs counter
				f := countingFlow(t, &runs)
				abandoned(t, st, f, ttl)
				time.Sleep(ttl)
				drove, refused := raceResumers(t, how, st, f)
				assert.Equal(t, 1, drove, "exactly one resumer drives the run")
				assert.LessOrEqual(t, refused, 1, "the other is refused with a *store.LeaseError, or finds the run ended")
				assert.Equal(t, 1, runs.get("one"), "the task ran once")
			})
		})
	}
}

// raceResumers starts two resumers of run "r" at one instant, each with
// its own executor, and counts the owners that drove it (recorded
// anything) and the resumers refused with a *store.LeaseError. A resumer
// that comes after the other has ended the run gets its recorded result:
// it did not drive it.
func raceResumers(t *testing.T, how string, st store.Store, f *flow.Flow) (drove, refused int) {
	return raceResumersOn(t, how, []store.Store{st, st}, f)
}

// takers records the owners whose batches were applied: those that
// drove the run (a resumer that took the lease and then found the run
// ended wrote nothing).
type takers struct {
	store.Store
	mu     *sync.Mutex
	owners map[string]bool
}

func (s takers) Apply(ctx context.Context, b *store.Batch) error {
	err := s.Store.Apply(ctx, b)
	if err == nil && b.Owner != "" {
		s.mu.Lock()
		s.owners[b.Owner] = true
		s.mu.Unlock()
	}
	return err
}

// raceResumersOn races two resumers, the first on sts[0], the second on
// sts[1].
func raceResumersOn(t *testing.T, how string, sts []store.Store, f *flow.Flow) (drove, refused int) {
	ctx := context.Background()
	var mu sync.Mutex
	owners := map[string]bool{}
	var wg sync.WaitGroup
	go1 := make(chan struct{})
	for k, owner := range []string{how + "-first", how + "-second"} {
		st := takers{Store: sts[k], mu: &mu, owners: owners}
		ex := pool.New(pool.Options{Workers: 2})
		wg.Go(func() {
			defer func() { assert.NoError(t, ex.Shutdown(context.Background())) }()
			<-go1
			opts := flow.RunOptions{Store: st, Owner: owner, LeaseTTL: time.Minute}
			var err error
			if how == "Resume" {
				var res *flow.Result
				res, err = f.Resume(ctx, ex, "r", opts)
				if err == nil {
					assert.Equal(t, task.Success, res.State)
				}
			} else {
				var results []*flow.Result
				results, err = flow.ResumeExpired(ctx, ex, []*flow.Flow{f}, opts)
				for _, res := range results {
					assert.Equal(t, task.Success, res.State)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			var le *store.LeaseError
			switch {
			case errors.As(err, &le):
				refused++
			case err != nil:
				t.Errorf("%s: %v", owner, err)
			}
		})
	}
	close(go1)
	wg.Wait()
	return len(owners), refused
}

// On the real clock, under -race, with real concurrency: a run abandoned
// by a dead owner is taken after its TTL, and of two resumers, each with
// its own store handle (as two processes have), exactly one drives it.
func TestLeaseRaceRealClock(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			var a, b store.Store
			switch kind {
			case "sqlite":
				path := filepath.Join(t.TempDir(), "runs.db")
				a, b = openStore(t, path), openStore(t, path)
			case "postgres":
				dsn := pgtest.Schema(t)
				a, b = openPostgres(t, dsn), openPostgres(t, dsn)
			}
			var runs counter
			f := countingFlow(t, &runs)
			const ttl = 200 * time.Millisecond
			expires := abandoned(t, a, f, ttl)
			_, err := f.Resume(context.Background(), newPool(t, 2), "r", flow.RunOptions{Store: b, Owner: "early"})
			if time.Now().Before(expires) { // else the machine was too slow to see the lease held
				require.ErrorIs(t, err, store.ErrLeaseHeld)
			}
			time.Sleep(time.Until(expires))
			drove, _ := raceResumersOn(t, "Resume", []store.Store{a, b}, f)
			assert.Equal(t, 1, drove, "exactly one resumer drives the run")
			assert.Equal(t, 1, runs.get("one"), "the task ran once")
		})
	}
}

func openPostgres(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}
