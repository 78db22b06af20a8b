package flow_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/observe"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

// gauge counts a task's concurrent runs and keeps the most seen.
type gauge struct{ now, most atomic.Int32 }

func (g *gauge) enter() {
	n := g.now.Add(1)
	for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
	}
}

func (g *gauge) leave() { g.now.Add(-1) }

func limitSet(t *testing.T, ls ...limit.Limit) *limit.Set {
	t.Helper()
	s, err := limit.New(limit.Options{}, ls...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type job struct {
	Customer string
	N        int
}

// mapFlow maps t over n jobs (customers cycling through customers).
func mapFlow(t *testing.T, name string, tk *task.Task[job, int], opts flow.Options, n int, customers ...string) (*flow.Flow, *flow.Node[[]int]) {
	t.Helper()
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i] = job{Customer: customers[i%len(customers)], N: i}
	}
	b := flow.New(name, opts)
	out := flow.Map(b, tk, flow.Const(jobs))
	f, err := b.Build()
	require.NoError(t, err)
	return f, out
}

// TestLimitBoundsConcurrency: ten tasks of one second under a limit of two
// on a pool of eight take five seconds, never more than two at once, and
// the waiting ones are seen Waiting with their position.
func TestLimitBoundsConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gauge
		tk := task.New("call", func(ctx context.Context, j job) (int, error) {
			g.enter()
			defer g.leave()
			time.Sleep(time.Second)
			return j.N, nil
		}, task.Options{Limits: []limit.Use{{Limit: "api"}}})
		f, out := mapFlow(t, "bounded", tk, flow.Options{}, 10, "c")
		set := limitSet(t, limit.Limit{Name: "api", Concurrency: 2})
		var mu sync.Mutex
		var notes []string
		start := time.Now()
		res, err := f.Run(t.Context(), newTestPool(t, 8, 8), flow.RunOptions{Limits: set, OnState: func(c task.Change) {
			if c.To == task.Waiting {
				mu.Lock()
				notes = append(notes, c.Task+" "+c.Note)
				mu.Unlock()
			}
		}})
		require.NoError(t, err)
		assert.Equal(t, 5*time.Second, time.Since(start))
		assert.Equal(t, int32(2), g.most.Load())
		v, _ := flow.Value(res, out)
		assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, v)
		require.Len(t, notes, 8, "eight of ten waited")
		assert.Equal(t, `call[2] limit "api" key "": position 1 (concurrency)`, notes[0])
		assert.Equal(t, `call[9] limit "api" key "": position 8 (concurrency)`, notes[7])
		last, _ := res.Task("call[9]")
		assert.Equal(t, 4*time.Second, last.Waited, "the last waited four seconds")
		assert.Equal(t, time.Second, last.Duration(), "its run starts when its attempt does")
		st := set.Stats()[0]
		assert.Equal(t, limit.Stats{Limit: "api", Granted: 10, Waits: 8, Waited: (1 + 1 + 2 + 2 + 3 + 3 + 4 + 4) * time.Second}, st)
		assert.Contains(t, res.Report(), "waited", "the report shows waits")
	})
}

// TestLimitByKey: one run per customer at a time: two customers' jobs run
// side by side, each customer's one after the other.
func TestLimitByKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		running := map[string]int{}
		tk := task.New("charge", func(ctx context.Context, j job) (int, error) {
			mu.Lock()
			running[j.Customer]++
			n := running[j.Customer]
			mu.Unlock()
			if n > 1 {
				return 0, fmt.Errorf("customer %s twice at once", j.Customer)
			}
			time.Sleep(time.Second)
			mu.Lock()
			running[j.Customer]--
			mu.Unlock()
			return j.N, nil
		}, task.Options{Limits: []limit.Use{limit.Keyed("customer", func(j job) string { return j.Customer })}})
		f, _ := mapFlow(t, "keyed", tk, flow.Options{}, 6, "a", "b")
		set := limitSet(t, limit.Limit{Name: "customer", Concurrency: 1})
		start := time.Now()
		_, err := f.Run(t.Context(), newTestPool(t, 8, 8), flow.RunOptions{Limits: set})
		require.NoError(t, err)
		assert.Equal(t, 3*time.Second, time.Since(start))
	})
}

// TestLimitWaitCountsAgainstFlowTimeout: a wait is not an attempt: a task
// whose limit is 1.5 s waits longer than that without timing out, and the
// flow's limit of 3.5 s ends the ones still waiting, Cancelled.
func TestLimitWaitCountsAgainstFlowTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := task.New("call", func(ctx context.Context, j job) (int, error) {
			time.Sleep(time.Second)
			return j.N, nil
		}, task.Options{Timeout: 1500 * time.Millisecond, Limits: []limit.Use{{Limit: "api"}}})
		f, _ := mapFlow(t, "timed", tk, flow.Options{Timeout: 3500 * time.Millisecond}, 6, "c")
		set := limitSet(t, limit.Limit{Name: "api", Concurrency: 1})
		start := time.Now()
		res, err := f.Run(t.Context(), newTestPool(t, 8, 8), flow.RunOptions{Limits: set})
		require.Error(t, err)
		var te *flow.TimeoutError
		assert.ErrorAs(t, err, &te)
		states := map[task.State]int{}
		for _, tr := range res.Tasks[1:] {
			states[tr.State]++
		}
		assert.Equal(t, map[task.State]int{task.Success: 3, task.Cancelled: 3}, states,
			"three ran (one waited 2 s, above its task limit), the fourth was cancelled running, two waiting")
		assert.Equal(t, 3500*time.Millisecond, time.Since(start))
		st := set.Stats()[0]
		assert.Zero(t, st.Held)
		assert.Zero(t, st.Waiting)
	})
}

// TestFlowTimeoutSeenWhenUnitsEndFirst: when the flow's own limit ends
// its only unit through that unit's event (here a wait for a limit held
// elsewhere) before the run's loop sees the context end, the run is still
// TimedOut with a *flow.TimeoutError. The two wake-ups come at the same
// instant and the loop takes either; 32 runs leave the wrong order a
// chance of 2^-32 to hide.
func TestFlowTimeoutSeenWhenUnitsEndFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := task.New("call", func(ctx context.Context, j job) (int, error) { return j.N, nil },
			task.Options{Limits: []limit.Use{{Limit: "api"}}})
		f, _ := mapFlow(t, "blocked", tk, flow.Options{Timeout: time.Second}, 1, "c")
		set := limitSet(t, limit.Limit{Name: "api", Concurrency: 1})
		h, _, err := set.Acquire(t.Context(), "elsewhere", []limit.Key{{Limit: "api"}}, func(*limit.Hold, error) {})
		require.NoError(t, err)
		require.NotNil(t, h)
		defer h.Release()
		for range 32 {
			res, err := f.Run(t.Context(), newTestPool(t, 2, 2), flow.RunOptions{Limits: set})
			var te *flow.TimeoutError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, task.TimedOut, res.State)
		}
	})
}

// TestFlowFinishingAtItsDeadlineSucceeds: a run whose tasks all succeed at
// the instant its limit passes is successful: the context ended, but it
// stopped nothing.
func TestFlowFinishingAtItsDeadlineSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := task.New("call", func(ctx context.Context, j job) (int, error) {
			time.Sleep(time.Second)
			return j.N, nil
		}, task.Options{})
		f, _ := mapFlow(t, "exact", tk, flow.Options{Timeout: time.Second}, 2, "c")
		succeeded := 0
		for range 32 {
			res, err := f.Run(t.Context(), newTestPool(t, 2, 2), flow.RunOptions{})
			if err != nil {
				// The task's sleep and the deadline end at one instant; a
				// run that saw its context first is stopped, rightly.
				var te *flow.TimeoutError
				require.ErrorAs(t, err, &te)
				continue
			}
			assert.Equal(t, task.Success, res.State)
			succeeded++
		}
		t.Logf("%d of 32 runs succeeded", succeeded)
		assert.NotZero(t, succeeded, "some runs finish before the loop sees the deadline")
	})
}

// TestLimitRateExact: a rate of 4 a second spaces starts 250 ms apart.
func TestLimitRateExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var starts []time.Duration
		t0 := time.Now()
		tk := task.New("call", func(ctx context.Context, j job) (int, error) {
			mu.Lock()
			starts = append(starts, time.Since(t0))
			mu.Unlock()
			return j.N, nil
		}, task.Options{Limits: []limit.Use{{Limit: "vendor"}}})
		f, _ := mapFlow(t, "rated", tk, flow.Options{}, 5, "c")
		set := limitSet(t, limit.Limit{Name: "vendor", Rate: 4, Per: time.Second})
		_, err := f.Run(t.Context(), newTestPool(t, 8, 8), flow.RunOptions{Limits: set})
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond, time.Second}, starts)
	})
}

// TestLimitBadInput: an unknown limit and limits without a set fail the
// run before it starts; a key function that panics fails its task run
// alone.
func TestLimitBadInput(t *testing.T) {
	tk := task.New("call", func(ctx context.Context, j job) (int, error) { return j.N, nil },
		task.Options{Limits: []limit.Use{{Limit: "nope"}}})
	f, _ := mapFlow(t, "unknown", tk, flow.Options{}, 2, "c")
	ex := newTestPool(t, 2, 2)
	res, err := f.Run(t.Context(), ex, flow.RunOptions{Limits: limitSet(t, limit.Limit{Name: "api", Concurrency: 1})})
	assert.Nil(t, res)
	var ue *limit.UseError
	require.ErrorAs(t, err, &ue)
	assert.ErrorIs(t, err, limit.ErrUnknown)
	assert.Equal(t, "call", ue.Task)
	_, err = f.Run(t.Context(), ex, flow.RunOptions{})
	assert.ErrorIs(t, err, limit.ErrNoSet)

	keyed := task.New("keyed", func(ctx context.Context, j job) (int, error) { return j.N, nil },
		task.Options{Limits: []limit.Use{limit.Keyed("customer", func(j job) string {
			if j.Customer == "bad" {
				panic("no key for bad")
			}
			return j.Customer
		})}})
	f, _ = mapFlow(t, "panics", keyed, flow.Options{}, 4, "good", "bad")
	res, err = f.Run(t.Context(), ex, flow.RunOptions{Limits: limitSet(t, limit.Limit{Name: "customer", Concurrency: 1})})
	require.Error(t, err)
	for i, want := range []task.State{task.Success, task.Failed, task.Success, task.Failed} {
		tr, _ := res.Task(fmt.Sprintf("keyed[%d]", i))
		assert.Equal(t, want, tr.State, "keyed[%d]", i)
		if want == task.Failed {
			var ke *limit.KeyError
			assert.ErrorAs(t, tr.Err, &ke)
			assert.Len(t, tr.Attempts, 0, "no attempt: never retried")
		}
	}
}

// TestLimitsReleasedRealClock: many task runs at once on a real pool, with
// panics, timeouts and retries: never more holders than the limit, every
// slot back when the run ends, and a cancelled run's waiters end
// Cancelled holding nothing.
func TestLimitsReleasedRealClock(t *testing.T) {
	var g gauge
	var calls atomic.Int32
	var tried sync.Map
	tk := task.New("work", func(ctx context.Context, j job) (int, error) {
		g.enter()
		counted := true
		defer func() {
			if counted {
				g.leave()
			}
		}()
		calls.Add(1)
		if _, again := tried.LoadOrStore(j.N, true); !again { // first attempts fail
			switch j.N % 7 {
			case 0:
				panic("boom")
			case 3:
				// Overruns its limit. On a soft executor the attempt ends
				// (and gives its slots back) when its TimeoutError comes
				// back, while this goroutine may still be returning: it
				// stops counting itself first, for good (see
				// docs/limits.md).
				g.leave()
				counted = false
				<-ctx.Done()
				return 0, ctx.Err()
			}
		}
		time.Sleep(200 * time.Microsecond)
		return j.N, nil
	}, task.Options{Timeout: 20 * time.Millisecond, MaxRetries: 3,
		Limits: []limit.Use{{Limit: "api"}, limit.Keyed("customer", func(j job) string { return j.Customer })}})
	f, _ := mapFlow(t, "many", tk, flow.Options{}, 300, "a", "b", "c", "d", "e")
	set := limitSet(t, limit.Limit{Name: "api", Concurrency: 4}, limit.Limit{Name: "customer", Concurrency: 2})
	ex := pool.New(pool.Options{Workers: 16})
	t.Cleanup(func() { _ = ex.Shutdown(context.Background()) })
	res, err := f.Run(context.Background(), ex, flow.RunOptions{Limits: set})
	require.NoError(t, err, "every task run succeeds within its retries")
	assert.LessOrEqual(t, g.most.Load(), int32(4))
	for _, st := range set.Stats() {
		assert.Zero(t, st.Held, st.Limit)
		assert.Zero(t, st.Waiting, st.Limit)
	}
	assert.Len(t, res.Tasks, 301)
	assert.Greater(t, calls.Load(), int32(300), "panics and timeouts were retried")

	// Cancel while most wait.
	ctx, cancel := context.WithCancel(context.Background())
	slow := task.New("slow", func(ctx context.Context, j job) (int, error) {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
		return j.N, nil
	}, task.Options{Limits: []limit.Use{{Limit: "api"}}})
	f, _ = mapFlow(t, "cancelled", slow, flow.Options{}, 50, "a")
	time.AfterFunc(20*time.Millisecond, cancel)
	res, err = f.Run(ctx, ex, flow.RunOptions{Limits: set})
	require.ErrorIs(t, err, context.Canceled)
	cancelled := 0
	for _, tr := range res.Tasks[1:] {
		if tr.State == task.Cancelled {
			cancelled++
		}
	}
	assert.GreaterOrEqual(t, cancelled, 40, "the waiting ones end Cancelled")
	for _, st := range set.Stats() {
		assert.Zero(t, st.Held, st.Limit)
		assert.Zero(t, st.Waiting, st.Limit)
	}
}

// TestLimitWaitRecorded: a durable run records the wait, with the limit,
// key and position, in its changes.
func TestLimitWaitRecorded(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "runs.db"), sqlite.Options{})
	require.NoError(t, err)
	defer st.Close()
	release := make(chan struct{})
	tk := task.New("call", func(ctx context.Context, j job) (int, error) {
		if j.N == 0 {
			<-release
		}
		return j.N, nil
	}, task.Options{Limits: []limit.Use{limit.Keyed("customer", func(j job) string { return j.Customer })}})
	f, _ := mapFlow(t, "recorded", tk, flow.Options{}, 2, "c9")
	set := limitSet(t, limit.Limit{Name: "customer", Concurrency: 1})
	done := make(chan error, 1)
	go func() {
		_, err := f.Run(context.Background(), newTestPool(t, 2, 2), flow.RunOptions{Store: st, RunID: "r1", Limits: set})
		done <- err
	}()
	require.Eventually(t, func() bool {
		trs, err := st.TaskRuns(context.Background(), "r1")
		if err != nil {
			return false
		}
		for _, tr := range trs {
			if tr.Label == "call[1]" && tr.State == "Waiting" {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "the waiting task run is recorded Waiting")
	close(release)
	require.NoError(t, <-done)
	chs, err := st.Changes(context.Background(), "r1")
	require.NoError(t, err)
	var waits []string
	for _, c := range chs {
		if c.To == "Waiting" {
			waits = append(waits, c.Label+": "+c.ErrMessage)
		}
	}
	assert.Equal(t, []string{`call[1]: limit "customer" key "c9": position 1 (concurrency)`}, waits)
	assert.False(t, strings.Contains(fmt.Sprint(set.Stats()), "Held:1"))
}

// waitRecorder is an observe.WaitObserver that keeps the waits.
type waitRecorder struct {
	observe.Nop
	mu    sync.Mutex
	waits []observe.Wait
}

func (w *waitRecorder) WaitStart(*observe.Wait) {}

func (w *waitRecorder) WaitEnd(e *observe.Wait) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waits = append(w.waits, *e)
}

// TestLimitWaitsObserved: an observe.WaitObserver sees each wait, with
// its limit, position and length, and whether it ended with the limits
// taken.
func TestLimitWaitsObserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := task.New("call", func(ctx context.Context, j job) (int, error) {
			time.Sleep(time.Second)
			return j.N, nil
		}, task.Options{Limits: []limit.Use{{Limit: "api"}}})
		f, _ := mapFlow(t, "observed", tk, flow.Options{Timeout: 2500 * time.Millisecond}, 4, "c")
		set := limitSet(t, limit.Limit{Name: "api", Concurrency: 1})
		rec := &waitRecorder{}
		start := time.Now()
		_, err := f.Run(t.Context(), newTestPool(t, 4, 4), flow.RunOptions{Limits: set, Observer: rec})
		require.Error(t, err, "the flow times out with call[3] still waiting")
		require.Len(t, rec.waits, 3)
		byLabel := map[string]observe.Wait{}
		for _, w := range rec.waits {
			byLabel[w.Task.Label] = w
		}
		w1, w3 := byLabel["call[1]"], byLabel["call[3]"]
		assert.Equal(t, "api", w1.Limit)
		assert.Equal(t, 1, w1.Position)
		assert.Equal(t, 1, w1.Attempt)
		assert.True(t, w1.Granted)
		assert.Equal(t, time.Second, w1.End.Sub(w1.Start))
		assert.Equal(t, 3, w3.Position)
		assert.False(t, w3.Granted, "its run ended while it waited")
		assert.Equal(t, 2500*time.Millisecond, w3.End.Sub(start))
	})
}
