package local_test

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
)

// helperGoroutines counts the executor's helper goroutines.
func helperGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("executor/local.(*Executor).serve("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestIdleHelpersFollowTheLoad: after a burst of concurrent limited calls
// the helpers stay warm while the load lasts, and are retired, one per
// call, once it falls, down to a few.
func TestIdleHelpersFollowTheLoad(t *testing.T) {
	ex := local.New(local.Options{})
	bg := context.Background()
	const burst = 40
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(burst)
	blocked := executor.NewHandler("blocked", func(ctx context.Context, _ int) (int, error) {
		started.Done()
		<-release
		return 0, nil
	}, nil)
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			_, err := executor.Run(bg, ex, executor.Call{Handler: blocked, Input: 0, Limit: time.Hour})
			assert.NoError(t, err)
		})
	}
	started.Wait()
	// Eventually: a helper of an earlier test's executor may still be on
	// its way out of serve.
	assert.Eventually(t, func() bool { return helperGoroutines() == burst }, 10*time.Second, time.Millisecond,
		"one helper per limited call running: %d", helperGoroutines())
	close(release)
	wg.Wait()
	kept := helperGoroutines()
	// As the burst ends, each returning call keeps its helper while fewer
	// are idle than still run: about half stay warm.
	assert.GreaterOrEqual(t, kept, burst/4, "the burst's helpers are not all retired as it ends")

	quick := executor.NewHandler("quick", func(ctx context.Context, n int) (int, error) { return n, nil }, nil)
	for i := range 2 * burst { // one call at a time
		v, err := executor.Run(bg, ex, executor.Call{Handler: quick, Input: i, Limit: time.Hour})
		require.NoError(t, err)
		assert.Equal(t, i, v)
	}
	assert.Eventually(t, func() bool { return helperGoroutines() <= 4 }, 10*time.Second, time.Millisecond,
		"helpers left once the load fell: %d", helperGoroutines())
	require.NoError(t, ex.Shutdown(bg))
	assert.Zero(t, helperGoroutines())
}
