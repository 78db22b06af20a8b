package pool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/pool"
)

// gate is a task input: the task waits for release (ignoring its context
// unless coop is set), noting how many tasks run at once.
type gate struct {
	release chan struct{}
	coop    bool
	started chan<- int // receives id when the task starts, if not nil
	id      int
}

// concurrency tracks how many gated tasks run at once.
var running, maxRunning atomic.Int64

func resetConcurrency() { running.Store(0); maxRunning.Store(0) }

var gated = executor.NewHandler("gated", func(ctx context.Context, g gate) (int, error) {
	n := running.Add(1)
	defer running.Add(-1)
	for {
		m := maxRunning.Load()
		if n <= m || maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	if g.started != nil {
		g.started <- g.id
	}
	if g.coop {
		select {
		case <-g.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return g.id, nil
	}
	<-g.release
	return g.id, nil
}, nil)

func call(in any, limit time.Duration) executor.Call {
	return executor.Call{Handler: gated, Input: in, RunID: "r", Attempt: 1, Limit: limit}
}

func shutdown(t *testing.T, ex *pool.Executor) {
	t.Helper()
	require.NoError(t, ex.Shutdown(context.Background()))
}

func done(f *executor.Future) bool {
	_, _, ok := f.Result()
	return ok
}

func TestSubmitWaitsForRoomThenProceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1, Queue: 1})
		defer shutdown(t, ex)
		release := make(chan struct{})
		bg := context.Background()
		first, err := ex.Submit(bg, call(gate{release: release, id: 1}, 0))
		require.NoError(t, err)
		synctest.Wait() // the worker holds the first call
		second, err := ex.Submit(bg, call(gate{release: release, id: 2}, 0))
		require.NoError(t, err) // queued

		var third *executor.Future
		returned := make(chan struct{})
		go func() {
			defer close(returned)
			f, err := ex.Submit(bg, call(gate{release: release, id: 3}, 0))
			assert.NoError(t, err)
			third = f
		}()
		synctest.Wait()
		select {
		case <-returned:
			t.Fatal("Submit returned while the queue was full")
		default:
		}
		_, err = ex.TrySubmit(bg, call(gate{release: release}, 0))
		require.ErrorIs(t, err, executor.ErrQueueFull, "TrySubmit does not wait")

		close(release) // every call returns at once from now on
		<-returned
		for i, f := range []*executor.Future{first, second, third} {
			v, err := f.Wait(bg)
			require.NoError(t, err)
			assert.Equal(t, i+1, v)
		}
		assert.Equal(t, uint64(3), ex.Stats().Submitted, "the refused TrySubmit is not counted")
	})
}

func TestSubmitGivesUpWhenItsContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1, Queue: -1})
		defer shutdown(t, ex)
		release := make(chan struct{})
		defer close(release)
		_, err := ex.Submit(context.Background(), call(gate{release: release}, 0))
		require.NoError(t, err)

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		f, err := ex.Submit(ctx, call(gate{release: release}, 0))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Nil(t, f)
		assert.Equal(t, 50*time.Millisecond, time.Since(start))

		ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel2()
		err = ex.Go(ctx2, call(gate{release: release}, 0))
		require.ErrorIs(t, err, context.DeadlineExceeded, "Go refuses like Submit")

		// A context that has already ended is accepted and cancelled at once.
		f, err = ex.Submit(ctx, call(gate{release: release}, 0))
		require.NoError(t, err)
		_, err = f.Wait(context.Background())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var ce *executor.CanceledError
		require.ErrorAs(t, err, &ce)
		require.NoError(t, ex.Go(ctx, call(gate{release: release}, 0)))
		assert.Equal(t, executor.Stats{Submitted: 3, Running: 1, Canceled: 2}, ex.Stats())
	})
}

func TestTrySubmitWithoutQueueNeedsAnIdleWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1, Queue: -1})
		defer shutdown(t, ex)
		synctest.Wait() // the worker is waiting for a call
		release := make(chan struct{})
		f, err := ex.TrySubmit(context.Background(), call(gate{release: release, id: 7}, 0))
		require.NoError(t, err)
		synctest.Wait()
		_, err = ex.TrySubmit(context.Background(), call(gate{release: release}, 0))
		require.ErrorIs(t, err, executor.ErrQueueFull)
		close(release)
		v, err := f.Wait(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 7, v)
	})
}

func TestFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1, Queue: 100})
		defer shutdown(t, ex)
		release := make(chan struct{})
		close(release)
		started := make(chan int, 100)
		hold := make(chan struct{})
		// The first call holds the worker so that the others queue up.
		_, err := ex.Submit(context.Background(), call(gate{release: hold, started: started, id: 0}, 0))
		require.NoError(t, err)
		for i := 1; i < 100; i++ {
			_, err := ex.Submit(context.Background(), call(gate{release: release, started: started, id: i}, 0))
			require.NoError(t, err)
		}
		close(hold)
		for want := range 100 {
			assert.Equal(t, want, <-started)
		}
	})
}

func TestPanicFailsOneCallAndTheWorkerSurvives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		var mu sync.Mutex
		logger := hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{w: &logs, mu: &mu}, JSONFormat: true})
		ex := pool.New(pool.Options{Workers: 1, Logger: logger})
		defer shutdown(t, ex)
		boom := executor.NewHandler("boom", func(context.Context, struct{}) (int, error) { panic("boom") }, nil)
		for _, limit := range []time.Duration{0, time.Minute} {
			_, err := executor.Run(context.Background(), ex, executor.Call{Handler: boom, Limit: limit})
			var pe *executor.PanicError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "boom", pe.Value)
		}
		// With Go nobody gets the error: it is logged, and counted.
		require.NoError(t, ex.Go(context.Background(), executor.Call{Handler: boom, RunID: "go-run"}))
		release := make(chan struct{})
		close(release)
		v, err := executor.Run(context.Background(), ex, call(gate{release: release, id: 5}, 0))
		require.NoError(t, err)
		assert.Equal(t, 5, v)
		st := ex.Stats()
		assert.Equal(t, uint64(3), st.Failed)
		assert.Equal(t, uint64(1), st.Succeeded)
		mu.Lock()
		defer mu.Unlock()
		assert.Contains(t, logs.String(), `"@level":"error"`)
		assert.Contains(t, logs.String(), `"run":"go-run"`)
	})
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestAbandonedCallsKeepTheirWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		resetConcurrency()
		const workers = 3
		ex := pool.New(pool.Options{Workers: workers, Queue: 100})
		defer shutdown(t, ex)
		release := make(chan struct{})
		var futures []*executor.Future
		for i := range 20 {
			f, err := ex.Submit(context.Background(), call(gate{release: release, id: i}, 10*time.Millisecond))
			require.NoError(t, err)
			futures = append(futures, f)
		}
		// The first three time out at 10ms and are abandoned, still
		// holding every worker: the others wait in the queue.
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		for i, f := range futures {
			_, err, ok := f.Result()
			if i < workers {
				require.True(t, ok)
				require.ErrorIs(t, err, executor.ErrTimeout)
			} else {
				assert.False(t, ok, "call %d ran although every worker is held", i)
			}
		}
		st := ex.Stats()
		assert.Equal(t, int64(workers), st.Abandoned)
		assert.Equal(t, int64(workers), st.Running)
		assert.Equal(t, int64(workers), running.Load(), "abandoned calls still run")

		close(release) // the rest run and return in time
		for _, f := range futures {
			_, _ = f.Wait(context.Background())
		}
		assert.LessOrEqual(t, maxRunning.Load(), int64(workers), "more calls ran at once than there are workers")
		synctest.Wait()
		st = ex.Stats()
		assert.Equal(t, int64(0), st.Abandoned)
		assert.Equal(t, uint64(workers), st.TimedOut)
		assert.Equal(t, uint64(20-workers), st.Succeeded)
	})
}

func TestMaxAbandonedRefusesCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 2, MaxAbandoned: 1})
		defer shutdown(t, ex)
		release := make(chan struct{})
		_, err := executor.Run(context.Background(), ex, call(gate{release: release}, time.Millisecond))
		require.ErrorIs(t, err, executor.ErrTimeout)
		require.Equal(t, int64(1), ex.Stats().Abandoned)

		_, err = ex.Submit(context.Background(), call(gate{release: release}, 0))
		require.ErrorIs(t, err, pool.ErrTooManyAbandoned)
		assert.Contains(t, err.Error(), "1 abandoned, cap 1")
		_, err = ex.TrySubmit(context.Background(), call(gate{release: release}, 0))
		require.ErrorIs(t, err, pool.ErrTooManyAbandoned)
		require.ErrorIs(t, ex.Go(context.Background(), call(gate{release: release}, 0)), pool.ErrTooManyAbandoned)

		close(release) // the abandoned call returns
		synctest.Wait()
		v, err := executor.Run(context.Background(), ex, call(gate{release: release, id: 4}, 0))
		require.NoError(t, err)
		assert.Equal(t, 4, v)
	})
}

func TestCancelQueuedCallNeverRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1})
		defer shutdown(t, ex)
		hold := make(chan struct{})
		_, err := ex.Submit(context.Background(), call(gate{release: hold}, 0))
		require.NoError(t, err)
		synctest.Wait()

		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan int, 1)
		f, err := ex.Submit(ctx, call(gate{release: hold, started: started, id: 9}, time.Minute))
		require.NoError(t, err)
		cancel()
		synctest.Wait()
		require.True(t, done(f), "a cancelled queued call is answered at once")
		_, err = f.Wait(context.Background())
		var ce *executor.CanceledError
		require.ErrorAs(t, err, &ce)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, f.Worker(), "it never reached a worker")

		close(hold)
		synctest.Wait()
		assert.Empty(t, started, "the cancelled call ran")
		st := ex.Stats()
		assert.Equal(t, uint64(1), st.Canceled)
		assert.Equal(t, uint64(1), st.Succeeded)
		assert.Equal(t, int64(0), st.Abandoned, "a queued call is not abandoned")
	})
}

func TestCancelRunningStubbornCallHoldsItsWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1})
		defer shutdown(t, ex)
		release := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		f, err := ex.Submit(ctx, call(gate{release: release}, 0))
		require.NoError(t, err)
		synctest.Wait()
		cancel()
		synctest.Wait()
		require.True(t, done(f))
		_, err = f.Wait(context.Background())
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, executor.ErrTimeout)
		assert.Equal(t, "pool/0", f.Worker())
		st := ex.Stats()
		assert.Equal(t, int64(1), st.Abandoned)
		assert.Equal(t, int64(1), st.Running)

		next, err := ex.Submit(context.Background(), call(gate{release: release, id: 2}, 0))
		require.NoError(t, err)
		synctest.Wait()
		assert.False(t, done(next), "a call ran on the worker held by the abandoned one")
		close(release)
		v, err := next.Wait(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 2, v)
		assert.Equal(t, int64(0), ex.Stats().Abandoned)
	})
}

func TestShutdownWithStuckCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1})
		release := make(chan struct{})
		running, err := ex.Submit(context.Background(), executor.Call{Handler: gated,
			Input: gate{release: release}, RunID: "stuck", Attempt: 2})
		require.NoError(t, err)
		synctest.Wait()
		queued, err := ex.Submit(context.Background(), call(gate{release: release}, 0))
		require.NoError(t, err)

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err = ex.Shutdown(ctx)
		var se *executor.ShutdownError
		require.ErrorAs(t, err, &se)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, []string{"gated (run stuck, attempt 2)"}, se.Running)

		// The queued call was answered at Shutdown, without running.
		_, qerr := queued.Wait(context.Background())
		var ce *executor.CanceledError
		require.ErrorAs(t, qerr, &ce)
		assert.ErrorIs(t, qerr, executor.ErrClosed)
		assert.ErrorIs(t, qerr, context.Canceled)
		assert.Equal(t, executor.ClassCanceled, executor.ClassOf(qerr))

		for _, submit := range []func() error{
			func() error { _, err := ex.Submit(context.Background(), call(gate{}, 0)); return err },
			func() error { _, err := ex.TrySubmit(context.Background(), call(gate{}, 0)); return err },
			func() error { return ex.Go(context.Background(), call(gate{}, 0)) },
		} {
			require.ErrorIs(t, submit(), executor.ErrClosed)
		}

		close(release)
		_, err = running.Wait(context.Background())
		require.NoError(t, err, "the running call was not disturbed")
		require.NoError(t, ex.Shutdown(context.Background()), "a later Shutdown waits it out")
		assert.Equal(t, executor.Stats{Submitted: 2, Succeeded: 1, Canceled: 1}, ex.Stats())
	})
}

func TestShutdownWakesSubmittersWaitingForRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1, Queue: -1})
		release := make(chan struct{})
		_, err := ex.Submit(context.Background(), call(gate{release: release}, 0))
		require.NoError(t, err)
		synctest.Wait()
		errc := make(chan error, 1)
		go func() {
			_, err := ex.Submit(context.Background(), call(gate{release: release}, 0))
			errc <- err
		}()
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.Error(t, ex.Shutdown(ctx))
		require.ErrorIs(t, <-errc, executor.ErrClosed)
		close(release)
		require.NoError(t, ex.Shutdown(context.Background()))
	})
}

func TestWorkerNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 3})
		defer shutdown(t, ex)
		assert.Equal(t, 3, ex.Workers())
		release := make(chan struct{})
		var futures []*executor.Future
		for range 3 {
			f, err := ex.Submit(context.Background(), call(gate{release: release}, 0))
			require.NoError(t, err)
			futures = append(futures, f)
		}
		synctest.Wait()
		close(release)
		seen := map[string]bool{}
		for _, f := range futures {
			_, err := f.Wait(context.Background())
			require.NoError(t, err)
			seen[f.Worker()] = true
		}
		assert.Equal(t, map[string]bool{"pool/0": true, "pool/1": true, "pool/2": true}, seen)
	})
}

// whoami returns the identity and a context value seen by the task.
type whoKey struct{}

var whoami = executor.NewHandler("whoami", func(ctx context.Context, _ struct{}) (string, error) {
	id, _ := executor.CallInfo(ctx)
	return fmt.Sprintf("%s/%s/%d/%v", id.Task, id.RunID, id.Attempt, ctx.Value(whoKey{})), nil
}, nil)

func TestEachCallSeesItsOwnIdentity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One worker runs calls of alternating identities and contexts:
		// none may see another's.
		ex := pool.New(pool.Options{Workers: 1})
		defer shutdown(t, ex)
		ctxA := context.WithValue(context.Background(), whoKey{}, "a")
		ctxB := context.WithValue(context.Background(), whoKey{}, "b")
		for i := range 12 {
			ctx, val := ctxA, "a"
			if i%3 == 0 {
				ctx, val = ctxB, "b"
			}
			c := executor.Call{Handler: whoami, RunID: fmt.Sprintf("run%d", i%2), Attempt: 1 + i%4}
			if i%5 == 0 {
				c.Limit = time.Minute
			}
			v, err := executor.Run(ctx, ex, c)
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("whoami/run%d/%d/%s", i%2, 1+i%4, val), v)
		}
	})
}

// probe reports what a task sees of its context after its limit, without
// ever calling Done first.
var probe = executor.NewHandler("probe", func(ctx context.Context, wait time.Duration) (string, error) {
	time.Sleep(wait)
	var te *executor.TimeoutError
	isTimeout := errors.As(context.Cause(ctx), &te)
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	<-child.Done()
	return fmt.Sprintf("%v %v %v", ctx.Err(), isTimeout, errors.Is(context.Cause(child), executor.ErrTimeout)), nil
}, nil)

func TestLimitedContextEndsWithItsCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		var mu sync.Mutex
		logger := hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{w: &logs, mu: &mu}, JSONFormat: true})
		ex := pool.New(pool.Options{Workers: 1, Logger: logger})
		defer shutdown(t, ex)
		// The task sleeps past its limit, then looks at its context.
		f, err := ex.Submit(context.Background(), executor.Call{Handler: probe, Input: 20 * time.Millisecond,
			RunID: "probe-run", Limit: 10 * time.Millisecond})
		require.NoError(t, err)
		_, err = f.Wait(context.Background())
		var te *executor.TimeoutError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, 10*time.Millisecond, te.Elapsed, "answered exactly at the limit")
		assert.False(t, te.Stopped)
		synctest.Wait()
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		assert.Equal(t, int64(0), ex.Stats().Abandoned)
		mu.Lock()
		out := logs.String()
		mu.Unlock()
		assert.Equal(t, 1, strings.Count(out, `"@level":"warn"`), out)
		assert.Contains(t, out, `"run":"probe-run"`)
		assert.Contains(t, out, `"ran":`)

		// Within its limit, the context is live and its cause is nil.
		v, err := executor.Run(context.Background(), ex, executor.Call{Handler: whoami, Limit: time.Minute})
		require.NoError(t, err)
		assert.Equal(t, "whoami//1/<nil>", v)
	})
}

func TestLimitedContextSeenAfterTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1})
		defer shutdown(t, ex)
		results := make(chan string, 1)
		h := executor.NewHandler("late-look", func(ctx context.Context, _ struct{}) (struct{}, error) {
			before := fmt.Sprint(ctx.Err(), context.Cause(ctx))
			time.Sleep(20 * time.Millisecond) // ignores its context
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			var te *executor.TimeoutError
			results <- fmt.Sprint(before, " | ", ctx.Err(), " ", errors.As(context.Cause(ctx), &te),
				" ", child.Err(), " ", errors.As(context.Cause(child), &te))
			return struct{}{}, nil
		}, nil)
		_, err := executor.Run(context.Background(), ex, executor.Call{Handler: h, Limit: 10 * time.Millisecond})
		require.ErrorIs(t, err, executor.ErrTimeout)
		assert.Equal(t, "<nil> <nil> | context deadline exceeded true context deadline exceeded true", <-results)
	})
}

func TestGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 2})
		release := make(chan struct{})
		close(release)
		for i := range 10 {
			require.NoError(t, ex.Go(context.Background(), call(gate{release: release, id: i}, time.Duration(i%2)*time.Minute)))
		}
		require.Error(t, ex.Go(context.Background(), executor.Call{}), "a nil Handler is refused")
		synctest.Wait()
		require.NoError(t, ex.Shutdown(context.Background()))
		assert.Equal(t, executor.Stats{Submitted: 10, Succeeded: 10}, ex.Stats())
	})
}

func TestOptionsDefaults(t *testing.T) {
	ex := pool.New(pool.Options{Workers: -3})
	defer shutdown(t, ex)
	assert.Positive(t, ex.Workers(), "zero or less means GOMAXPROCS")
	assert.Equal(t, executor.Soft, ex.Enforcement())
}

func TestShutdownOfAnIdlePoolSucceedsEvenWithAnEndedContext(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	synctest.Test(t, func(t *testing.T) {
		// A pool that never ran a call, and one whose worker goroutine
		// has ended on its own: Shutdown waits for nothing and must not
		// report a failure, even with an ended context.
		fresh := pool.New(pool.Options{Workers: 2})
		assert.NoError(t, fresh.Shutdown(ended))

		used := pool.New(pool.Options{Workers: 2})
		_, err := executor.Run(context.Background(), used, call(gate{release: closedChan()}, time.Minute))
		require.NoError(t, err)
		synctest.Wait()
		assert.NoError(t, used.Shutdown(ended))
	})
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
