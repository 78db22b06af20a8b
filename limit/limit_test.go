package limit_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newSet(t *testing.T, opts limit.Options, ls ...limit.Limit) *limit.Set {
	t.Helper()
	s, err := limit.New(opts, ls...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// grants collects the holds that done callbacks deliver.
type grants struct {
	mu   sync.Mutex
	got  map[string]*limit.Hold
	errs map[string]error
	at   map[string]time.Time
}

func newGrants() *grants {
	return &grants{got: map[string]*limit.Hold{}, errs: map[string]error{}, at: map[string]time.Time{}}
}

func (g *grants) done(name string) func(*limit.Hold, error) {
	return func(h *limit.Hold, err error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.got[name], g.errs[name], g.at[name] = h, err, time.Now()
	}
}

func (g *grants) hold(name string) *limit.Hold {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got[name]
}

func (g *grants) err(name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.errs[name]
}

func TestBadLimitsAreRefused(t *testing.T) {
	for name, l := range map[string]limit.Limit{
		"no name":        {Concurrency: 1},
		"zero":           {Name: "z"},
		"negative":       {Name: "n", Concurrency: -1},
		"rate no period": {Name: "r", Rate: 5},
		"rate too fast":  {Name: "f", Rate: 5, Per: 3},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := limit.New(limit.Options{}, l)
			var le *limit.LimitError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, l.Name, le.Limit)
		})
	}
	_, err := limit.New(limit.Options{}, limit.Limit{Name: "z"})
	assert.ErrorIs(t, err, limit.ErrZero)
	_, err = limit.New(limit.Options{}, limit.Limit{Name: "a", Concurrency: 1}, limit.Limit{Name: "a", Rate: 1, Per: time.Second})
	assert.ErrorContains(t, err, "defined twice")
}

func TestUnknownLimitAndNoSet(t *testing.T) {
	s := newSet(t, limit.Options{}, limit.Limit{Name: "api", Concurrency: 1})
	uses := []limit.Use{{Limit: "api"}, {Limit: "nope"}}
	err := s.Check("charge", uses)
	var ue *limit.UseError
	require.ErrorAs(t, err, &ue)
	assert.ErrorIs(t, err, limit.ErrUnknown)
	assert.Equal(t, "charge", ue.Task)
	assert.Equal(t, "nope", ue.Limit)
	var none *limit.Set
	assert.ErrorIs(t, none.Check("charge", uses), limit.ErrNoSet)
	assert.NoError(t, none.Check("charge", nil), "no uses need no set")
	_, _, err = s.Acquire(context.Background(), "h", []limit.Key{{Limit: "nope"}}, nil)
	assert.ErrorIs(t, err, limit.ErrUnknown)
}

type order struct{ Customer string }

func TestKeysAndPanickingKey(t *testing.T) {
	uses := []limit.Use{
		limit.Keyed("customer", func(o order) string { return o.Customer }),
		{Limit: "api"},
		{Limit: "api"},
	}
	keys, err := limit.Keys("charge", uses, order{Customer: "c7"})
	require.NoError(t, err)
	assert.Equal(t, []limit.Key{{Limit: "api"}, {Limit: "customer", Key: "c7"}}, keys, "sorted, one per (limit, key)")

	_, err = limit.Keys("charge", uses, 42)
	var ke *limit.KeyError
	require.ErrorAs(t, err, &ke, "a Keyed on an input of another type")
	assert.Equal(t, "customer", ke.Limit)
	boom := []limit.Use{{Limit: "api", Key: func(any) string { panic("boom") }}}
	_, err = limit.Keys("charge", boom, 1)
	require.ErrorAs(t, err, &ke)
	assert.Equal(t, "boom", ke.Value)
	assert.Equal(t, "charge", ke.Task)
	assert.NotEmpty(t, ke.Stack)
}

// TestConcurrencyQueueInOrder: with a limit of 2, the third and later
// attempts wait in order, see their positions, and each release lets the
// next one in.
func TestConcurrencyQueueInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSet(t, limit.Options{}, limit.Limit{Name: "api", Concurrency: 2})
		g := newGrants()
		keys := []limit.Key{{Limit: "api"}}
		var holds []*limit.Hold
		for i := range 2 {
			h, w, err := s.Acquire(t.Context(), fmt.Sprint(i), keys, g.done(fmt.Sprint(i)))
			require.NoError(t, err)
			require.NotNil(t, h, "attempt %d takes a free slot at once", i)
			assert.Zero(t, w)
			holds = append(holds, h)
		}
		for i := 2; i < 5; i++ {
			h, w, err := s.Acquire(t.Context(), fmt.Sprint(i), keys, g.done(fmt.Sprint(i)))
			require.NoError(t, err)
			require.Nil(t, h)
			assert.Equal(t, limit.Wait{Limit: "api", Position: i - 1}, w)
		}
		st := s.Stats()[0]
		assert.Equal(t, 2, st.Held)
		assert.Equal(t, 3, st.Waiting)
		time.Sleep(time.Second)
		holds[0].Release()
		holds[0].Release() // idempotent
		synctest.Wait()
		require.NotNil(t, g.hold("2"), "the first waiter goes next")
		assert.Nil(t, g.hold("3"))
		holds[1].Release()
		synctest.Wait()
		require.NotNil(t, g.hold("3"))
		assert.Nil(t, g.hold("4"))
		g.hold("2").Release()
		g.hold("3").Release()
		synctest.Wait()
		require.NotNil(t, g.hold("4"))
		g.hold("4").Release()
		st = s.Stats()[0]
		assert.Equal(t, limit.Stats{Limit: "api", Granted: 5, Waits: 3, Waited: 3 * time.Second}, st)
	})
}

// TestRateExact: a rate of 10 a second with a burst of 2 lets two start
// at once, then one every 100ms, to the nanosecond.
func TestRateExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSet(t, limit.Options{}, limit.Limit{Name: "vendor", Rate: 10, Per: time.Second, Burst: 2})
		g := newGrants()
		start := time.Now()
		var immediate int
		for i := range 6 {
			h, _, err := s.Acquire(t.Context(), fmt.Sprint(i), []limit.Key{{Limit: "vendor"}}, g.done(fmt.Sprint(i)))
			require.NoError(t, err)
			if h != nil {
				immediate++
				h.Release()
			}
		}
		assert.Equal(t, 2, immediate, "the burst")
		time.Sleep(time.Second)
		for i := 2; i < 6; i++ {
			require.NoError(t, g.err(fmt.Sprint(i)))
			require.NotNil(t, g.hold(fmt.Sprint(i)))
			g.mu.Lock()
			assert.Equal(t, time.Duration(i-1)*100*time.Millisecond, g.at[fmt.Sprint(i)].Sub(start), "attempt %d", i)
			g.mu.Unlock()
		}
		// Idle for a while: the bucket fills to its burst, no more.
		time.Sleep(10 * time.Second)
		immediate = 0
		for i := range 3 {
			h, _, err := s.Acquire(t.Context(), fmt.Sprint("late", i), []limit.Key{{Limit: "vendor"}}, g.done(fmt.Sprint("late", i)))
			require.NoError(t, err)
			if h != nil {
				immediate++
			}
		}
		assert.Equal(t, 2, immediate)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		assert.NotNil(t, g.hold("late2"))
	})
}

// TestCancelWhileWaitingGivesBackOnlyWhatItHeld: an attempt that took
// limit a and waits for b gives a back when its context ends, and leaves
// b's holder alone.
func TestCancelWhileWaitingGivesBackOnlyWhatItHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSet(t, limit.Options{}, limit.Limit{Name: "a", Concurrency: 1}, limit.Limit{Name: "b", Concurrency: 1})
		g := newGrants()
		hb, _, err := s.Acquire(t.Context(), "x", []limit.Key{{Limit: "b"}}, g.done("x"))
		require.NoError(t, err)
		require.NotNil(t, hb)
		ctx, cancel := context.WithCancel(t.Context())
		h, w, err := s.Acquire(ctx, "y", []limit.Key{{Limit: "a"}, {Limit: "b"}}, g.done("y"))
		require.NoError(t, err)
		require.Nil(t, h)
		assert.Equal(t, "b", w.Limit, "y took a and waits for b")
		cancel()
		synctest.Wait()
		assert.ErrorIs(t, g.err("y"), context.Canceled)
		assert.Nil(t, g.hold("y"))
		ha, _, err := s.Acquire(t.Context(), "z", []limit.Key{{Limit: "a"}}, g.done("z"))
		require.NoError(t, err)
		assert.NotNil(t, ha, "a was given back")
		h2, _, err := s.Acquire(t.Context(), "z2", []limit.Key{{Limit: "b"}}, g.done("z2"))
		require.NoError(t, err)
		assert.Nil(t, h2, "b is still x's")
		hb.Release()
		synctest.Wait()
		assert.NotNil(t, g.hold("z2"))
		_, _, err = s.Acquire(ctx, "late", []limit.Key{{Limit: "a"}}, g.done("late"))
		assert.ErrorIs(t, err, context.Canceled, "an ended context is refused at once")
	})
}

func TestCloseFailsWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := limit.New(limit.Options{}, limit.Limit{Name: "a", Concurrency: 1}, limit.Limit{Name: "r", Rate: 1, Per: time.Hour})
		require.NoError(t, err)
		g := newGrants()
		_, _, err = s.Acquire(t.Context(), "x", []limit.Key{{Limit: "a"}}, g.done("x"))
		require.NoError(t, err)
		_, _, _ = s.Acquire(t.Context(), "r1", []limit.Key{{Limit: "r"}}, g.done("r1"))
		_, _, err = s.Acquire(t.Context(), "y", []limit.Key{{Limit: "a"}}, g.done("y"))
		require.NoError(t, err)
		_, _, err = s.Acquire(t.Context(), "r2", []limit.Key{{Limit: "r"}}, g.done("r2"))
		require.NoError(t, err)
		require.NoError(t, s.Close())
		require.NoError(t, s.Close())
		assert.ErrorIs(t, g.err("y"), limit.ErrClosed)
		assert.ErrorIs(t, g.err("r2"), limit.ErrClosed)
		_, _, err = s.Acquire(t.Context(), "z", []limit.Key{{Limit: "a"}}, g.done("z"))
		assert.ErrorIs(t, err, limit.ErrClosed)
	})
}

// TestStoreTakeoverWithinTwoHeartbeats: a process that stops renewing
// (closed here without giving its slot back, as a SIGKILL would leave it)
// loses its slot to a waiting process within two heartbeat intervals.
func TestStoreTakeoverWithinTwoHeartbeats(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st, err := sqlite.Open(t.Context(), filepath.Join(dir, "runs.db"), sqlite.Options{})
		require.NoError(t, err)
		defer st.Close()
		const beat = time.Second
		lim := limit.Limit{Name: "api", Concurrency: 1}
		dead, err := limit.New(limit.Options{Store: st.DB, Owner: "dead", Heartbeat: beat}, lim)
		require.NoError(t, err)
		live := newSet(t, limit.Options{Store: st.DB, Owner: "live", Heartbeat: beat}, lim)
		g := newGrants()
		_, _, err = dead.Acquire(t.Context(), "d", []limit.Key{{Limit: "api"}}, g.done("d"))
		require.NoError(t, err)
		time.Sleep(10 * beat) // its heartbeat keeps the slot meanwhile
		synctest.Wait()
		require.NotNil(t, g.hold("d"))
		_, _, err = live.Acquire(t.Context(), "l", []limit.Key{{Limit: "api"}}, g.done("l"))
		require.NoError(t, err)
		time.Sleep(10 * beat)
		synctest.Wait()
		require.Nil(t, g.hold("l"), "a renewed slot stays its holder's")
		killed := time.Now()
		require.NoError(t, dead.Close())
		for g.hold("l") == nil {
			time.Sleep(time.Millisecond)
		}
		took := g.at["l"].Sub(killed)
		t.Logf("slot taken back %v after its holder stopped (heartbeat %v)", took, beat)
		assert.LessOrEqual(t, took, 2*beat)
		assert.Greater(t, took, beat, "not before its lease (1.75 heartbeats from the last renewal) could end")
		g.hold("l").Release()
		require.NoError(t, live.Close())
		held, err := st.Slots(t.Context(), "api", "")
		require.NoError(t, err)
		assert.Empty(t, held, "the released slot is free in the store")
	})
}

// TestManyAttemptsRealClock: many goroutines take and release limits at
// once, some cancelled while waiting; no more holders than the limit at
// any moment, and nothing is left held or waiting.
func TestManyAttemptsRealClock(t *testing.T) {
	for _, backend := range []string{"memory", "sqlite"} {
		t.Run(backend, func(t *testing.T) {
			opts := limit.Options{}
			if backend == "sqlite" {
				st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "runs.db"), sqlite.Options{})
				require.NoError(t, err)
				t.Cleanup(func() { _ = st.Close() })
				opts = limit.Options{Store: st.DB, Heartbeat: 200 * time.Millisecond}
			}
			const n, workers = 3, 24
			s := newSet(t, opts, limit.Limit{Name: "api", Concurrency: n}, limit.Limit{Name: "per", Concurrency: 1})
			var holding, most atomic.Int32
			var wg sync.WaitGroup
			var granted, cancelled atomic.Int32
			for w := range workers {
				wg.Go(func() {
					for i := range 10 {
						ctx, cancel := context.WithCancel(context.Background())
						if rand.IntN(4) == 0 {
							time.AfterFunc(time.Duration(rand.IntN(3000))*time.Microsecond, cancel)
						}
						ch := make(chan *limit.Hold, 1)
						errc := make(chan error, 1)
						keys := []limit.Key{{Limit: "api"}}
						if w%3 == 0 {
							keys = append(keys, limit.Key{Limit: "per", Key: fmt.Sprint(w % 2)})
						}
						h, _, err := s.Acquire(ctx, fmt.Sprintf("w%d-%d", w, i), keys, func(h *limit.Hold, err error) {
							ch <- h
							errc <- err
						})
						if err == nil && h == nil {
							h, err = <-ch, <-errc
						}
						if err != nil {
							assert.ErrorIs(t, err, context.Canceled)
							cancelled.Add(1)
							cancel()
							continue
						}
						granted.Add(1)
						k := holding.Add(1)
						for m := most.Load(); k > m && !most.CompareAndSwap(m, k); m = most.Load() {
						}
						time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
						holding.Add(-1)
						h.Release()
						cancel()
					}
				})
			}
			wg.Wait()
			assert.LessOrEqual(t, most.Load(), int32(n), "never more holders than the limit")
			assert.Positive(t, granted.Load())
			t.Logf("%d granted, %d cancelled while waiting, most holders at once %d", granted.Load(), cancelled.Load(), most.Load())
			for _, st := range s.Stats() {
				assert.Zero(t, st.Held, "%s: nothing held", st.Limit)
				assert.Zero(t, st.Waiting, "%s: nobody waits", st.Limit)
			}
			if opts.Store != nil {
				// Releases are given back by the pump: wait for them.
				require.Eventually(t, func() bool {
					held, err := opts.Store.Slots(context.Background(), "api", "")
					return err == nil && len(held) == 0
				}, 5*time.Second, 10*time.Millisecond, "every slot is free in the store")
			}
		})
	}
}

// TestStoreRateExact: with a store, reserved tokens let their attempts go
// at their tokens' times, however long the store takes: a rate of 10 a
// second spaces 8 starts 100 ms apart across two processes' Sets.
func TestStoreRateExact(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st, err := sqlite.Open(t.Context(), filepath.Join(dir, "runs.db"), sqlite.Options{})
		require.NoError(t, err)
		defer st.Close()
		lim := limit.Limit{Name: "vendor", Rate: 10, Per: time.Second}
		a := newSet(t, limit.Options{Store: st.DB, Owner: "a"}, lim)
		b := newSet(t, limit.Options{Store: st.DB, Owner: "b"}, lim)
		g := newGrants()
		start := time.Now()
		for i := range 8 {
			set := a
			if i%2 == 1 {
				set = b
			}
			h, _, err := set.Acquire(t.Context(), fmt.Sprint(i), []limit.Key{{Limit: "vendor"}}, g.done(fmt.Sprint(i)))
			require.NoError(t, err)
			require.Nil(t, h, "a store's tokens come through its pump")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		var at []time.Duration
		g.mu.Lock()
		for i := range 8 {
			require.NoError(t, g.errs[fmt.Sprint(i)])
			at = append(at, g.at[fmt.Sprint(i)].Sub(start))
		}
		g.mu.Unlock()
		slices.Sort(at)
		for k := range at {
			assert.Equal(t, time.Duration(k)*100*time.Millisecond, at[k], "start %d", k)
		}
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
	})
}
