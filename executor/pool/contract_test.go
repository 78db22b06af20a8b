package pool_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/pool"
)

func TestGoexitKeepsTheWorkerAndTheSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1, Queue: 8})
		bg := context.Background()
		var futs []*executor.Future
		for i := range 6 { // queued behind each other on the one worker
			h, limit := executortest.Goexit, time.Duration(0)
			if i%2 == 1 {
				h, limit = executortest.Echo, time.Minute
			}
			f, err := ex.Submit(bg, executor.Call{Handler: h, Input: executortest.Args{N: i}, Limit: limit})
			require.NoError(t, err)
			futs = append(futs, f)
		}
		for i, f := range futs {
			v, err := f.Wait(bg)
			if i%2 == 0 {
				assert.ErrorIs(t, err, executor.ErrGoexit, "call %d", i)
				continue
			}
			require.NoError(t, err)
			assert.Equal(t, 2*i, v.(executortest.Reply).N)
		}
		require.NoError(t, ex.Shutdown(bg))
		assert.Equal(t, executor.Stats{Submitted: 6, Succeeded: 3, Failed: 3}, ex.Stats())
	})
}

// TestBlockingOnDoneDoesNotDelayOtherLimits: an OnDone callback that
// blocks runs on its own call's answer, never on the goroutine that
// answers other calls' timeouts, or under a worker's lock, so other calls' limits fire on time.
func TestBlockingOnDoneDoesNotDelayOtherLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 4})
		bg := context.Background()
		stuck := func(limit time.Duration) executor.Call {
			return executor.Call{Handler: executortest.Sleep, Input: executortest.Args{Sleep: time.Hour}, Limit: limit}
		}
		release := make(chan struct{})
		a, err := ex.Submit(bg, stuck(10*time.Millisecond))
		require.NoError(t, err)
		a.OnDone(func() { <-release })
		start := time.Now()
		b, err := ex.Submit(bg, stuck(50*time.Millisecond))
		require.NoError(t, err)
		_, err = b.Wait(bg)
		require.ErrorIs(t, err, executor.ErrTimeout)
		assert.Equal(t, 50*time.Millisecond, time.Since(start), "b's limit fired on time")
		close(release)
		require.NoError(t, ex.Shutdown(bg))
	})
}

// gatedWriter blocks every write that contains what until release closes.
type gatedWriter struct {
	what    string
	release chan struct{}
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.what)) {
		<-w.release
	}
	return len(p), nil
}

func TestBlockingLoggerDoesNotDelayOtherLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &gatedWriter{what: "abandoned", release: make(chan struct{})}
		ex := pool.New(pool.Options{Workers: 4, Logger: hclog.New(&hclog.LoggerOptions{Output: w})})
		bg := context.Background()
		start := time.Now()
		var wg sync.WaitGroup
		for _, limit := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond} {
			wg.Go(func() {
				_, err := executor.Run(bg, ex, executor.Call{Handler: executortest.Sleep,
					Input: executortest.Args{Sleep: time.Hour}, Limit: limit})
				assert.ErrorIs(t, err, executor.ErrTimeout)
				assert.Equal(t, limit, time.Since(start), "answered at its limit while the logger blocks")
			})
		}
		wg.Wait()
		close(w.release)
		require.NoError(t, ex.Shutdown(bg))
	})
}

// TestBlockingOnDoneDoesNotDelayOtherLimitsRealClock is the real-clock
// twin of TestBlockingOnDoneDoesNotDelayOtherLimits: b's limit fires while
// a's OnDone callback is still blocked.
func TestBlockingOnDoneDoesNotDelayOtherLimitsRealClock(t *testing.T) {
	ex := pool.New(pool.Options{Workers: 4})
	bg := context.Background()
	stuck := func(limit time.Duration) executor.Call {
		return executor.Call{Handler: executortest.Sleep, Input: executortest.Args{Sleep: time.Hour, Cooperative: true}, Limit: limit}
	}
	release, blocked := make(chan struct{}), make(chan struct{})
	a, err := ex.Submit(bg, stuck(200*time.Millisecond)) // OnDone is registered well before
	require.NoError(t, err)
	a.OnDone(func() { close(blocked); <-release })
	<-blocked
	b, err := ex.Submit(bg, stuck(20*time.Millisecond))
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	_, err = b.Wait(wctx)
	assert.ErrorIs(t, err, executor.ErrTimeout, "b's limit fired while a's callback blocks")
	close(release)
	require.NoError(t, ex.Shutdown(bg))
}
