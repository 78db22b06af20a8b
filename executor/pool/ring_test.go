package pool_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/pool"
)

func TestQueueHoldsExactlyItsLength(t *testing.T) {
	// Lengths that are and are not powers of two: the queue's slots are
	// rounded up, its capacity is not.
	for _, q := range []int{1, 2, 3, 5, 8, 1000} {
		synctest.Test(t, func(t *testing.T) {
			ex := pool.New(pool.Options{Workers: 2, Queue: q})
			release := make(chan struct{})
			accepted := 0
			for {
				_, err := ex.TrySubmit(context.Background(), call(gate{release: release}, 0))
				if errors.Is(err, executor.ErrQueueFull) {
					break
				}
				require.NoError(t, err)
				accepted++
				synctest.Wait() // the first two reach their workers
			}
			assert.Equal(t, 2+q, accepted, "queue %d", q)
			close(release)
			synctest.Wait() // every queued call has run: none is left for Shutdown to cancel
			require.NoError(t, ex.Shutdown(context.Background()))
			assert.Equal(t, uint64(2+q), ex.Stats().Succeeded)
		})
	}
}

func TestEveryCallRunsOnceUnderManySubmitters(t *testing.T) {
	// Real concurrency: submitters racing each other and the workers
	// through a short queue, workers going idle and being started again.
	const submitters, each = 8, 3000
	for _, opts := range []pool.Options{{Workers: 3, Queue: 5}, {Workers: 64, Queue: 7}, {Workers: 2, Queue: -1}} {
		ex := pool.New(opts)
		var ran [submitters * each]atomic.Int32
		var wg sync.WaitGroup
		h := executor.NewHandler("count", func(_ context.Context, i int) (struct{}, error) {
			ran[i].Add(1)
			wg.Done()
			return struct{}{}, nil
		}, nil)
		var g errgroup.Group
		for s := range submitters {
			g.Go(func() error {
				for k := range each {
					i := s*each + k
					wg.Add(1)
					var err error
					if k%2 == 0 {
						err = ex.Go(context.Background(), executor.Call{Handler: h, Input: i, Attempt: i + 1})
					} else {
						_, err = ex.Submit(context.Background(), executor.Call{Handler: h, Input: i})
					}
					if err != nil {
						wg.Done()
						return err
					}
				}
				return nil
			})
		}
		require.NoError(t, g.Wait())
		wg.Wait()
		require.NoError(t, ex.Shutdown(context.Background()))
		for i := range ran {
			if n := ran[i].Load(); n != 1 {
				t.Fatalf("%+v: call %d ran %d times", opts, i, n)
			}
		}
		assert.Equal(t, executor.Stats{Submitted: submitters * each, Succeeded: submitters * each}, ex.Stats())
	}
}

func TestShutdownRacingSubmittersLeavesNoCallBehind(t *testing.T) {
	// Every accepted call is either run or answered as cancelled by
	// Shutdown, however the pushes and Shutdown interleave.
	for range 20 {
		ex := pool.New(pool.Options{Workers: 2, Queue: 3})
		var answered atomic.Int64
		var accepted atomic.Int64
		var g errgroup.Group
		for range 4 {
			g.Go(func() error {
				for {
					f, err := ex.Submit(context.Background(), executor.Call{Handler: whoami})
					if errors.Is(err, executor.ErrClosed) {
						return nil
					}
					if err != nil {
						return err
					}
					accepted.Add(1)
					f.OnDone(func() { answered.Add(1) })
				}
			})
		}
		for accepted.Load() < 50 {
			runtime.Gosched() // let them run a little
		}
		require.NoError(t, ex.Shutdown(context.Background()))
		require.NoError(t, g.Wait())
		assert.Equal(t, accepted.Load(), answered.Load())
		st := ex.Stats()
		assert.Equal(t, st.Submitted, st.Succeeded+st.Canceled, "%+v", st)
	}
}

func TestWorkerNamesOfAPoolOfManyWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 150
		ex := pool.New(pool.Options{Workers: n})
		release := make(chan struct{})
		var futures []*executor.Future
		for range n {
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
		want := map[string]bool{}
		for i := range n {
			want[fmt.Sprintf("pool/%d", i)] = true
		}
		assert.Equal(t, want, seen)
		require.NoError(t, ex.Shutdown(context.Background()))
	})
}

// barrier is a task input: the task returns once n tasks holding the
// same barrier have started, or fails with errStranded after stall.
type barrier struct {
	n       int32
	started *atomic.Int32
	all     chan struct{}
	stall   time.Duration
}

var errStranded = errors.New("a call of the barrier never started")

var barrierTask = executor.NewHandler("barrier", func(_ context.Context, b barrier) (struct{}, error) {
	if b.started.Add(1) == b.n {
		close(b.all)
	}
	select {
	case <-b.all:
		return struct{}{}, nil
	case <-time.After(b.stall):
		return struct{}{}, errStranded
	}
}, nil)

// noCallWaitsBehindAnother submits rounds of as many barrier calls as
// the pool has workers, from several goroutines at once, right as the
// last round's workers finish and look at the queue before they go idle.
// Every call of a round must start while the others run: a call left
// queued for a worker that then runs another call would wait for the
// whole stall.
func noCallWaitsBehindAnother(t *testing.T, workers, rounds int, stall time.Duration) {
	const submitters = 4
	ex := pool.New(pool.Options{Workers: workers})
	for r := range rounds {
		b := barrier{n: int32(workers), started: new(atomic.Int32), all: make(chan struct{}), stall: stall}
		var g errgroup.Group
		for s := range submitters {
			g.Go(func() error {
				var futures []*executor.Future
				for k := s; k < workers; k += submitters {
					c := executor.Call{Handler: barrierTask, Input: b}
					if k%2 == 0 {
						// Go's calls answer nothing: count them by Stats.
						if err := ex.Go(context.Background(), c); err != nil {
							return err
						}
						continue
					}
					f, err := ex.Submit(context.Background(), c)
					if err != nil {
						return err
					}
					futures = append(futures, f)
				}
				for _, f := range futures {
					if _, err := f.Wait(context.Background()); err != nil {
						return fmt.Errorf("round %d: %w", r, err)
					}
				}
				return nil
			})
		}
		require.NoError(t, g.Wait())
		<-b.all
	}
	require.NoError(t, ex.Shutdown(context.Background()))
	st := ex.Stats()
	assert.Equal(t, executor.Stats{Submitted: uint64(workers * rounds), Succeeded: uint64(workers * rounds)}, st)
}

func TestNoCallWaitsBehindAnotherWhileAWorkerIsIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		noCallWaitsBehindAnother(t, 8, 200, time.Minute)
	})
}

func TestNoCallWaitsBehindAnotherWhileAWorkerIsIdleRealClock(t *testing.T) {
	for _, workers := range []int{2, 8, 64} {
		noCallWaitsBehindAnother(t, workers, 20000/workers, 10*time.Second)
	}
}
