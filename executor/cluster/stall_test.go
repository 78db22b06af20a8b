package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/executortest"
)

// within waits for f's result for at most d; a stall fails the test
// rather than hanging it.
func within(t *testing.T, f *executor.Future, d time.Duration, what string) (any, error, bool) {
	t.Helper()
	select {
	case <-f.Done():
	case <-time.After(d):
		assert.Failf(t, "stalled", "%s: no result within %v", what, d)
		return nil, nil, false
	}
	v, err, ok := f.Result()
	return v, err, ok
}

func TestABlockedOnDoneStallsNoOtherCall(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex)})
	entered, unblock := make(chan struct{}), make(chan struct{})
	released := false
	release := func() {
		if !released {
			released = true
			close(unblock)
		}
	}
	t.Cleanup(release)

	// It sleeps, so that OnDone runs on the goroutine that completes it,
	// not at once on this one.
	first, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Sleep, RunID: "first", Input: args(1, 300*time.Millisecond)})
	require.NoError(t, err)
	first.OnDone(func() {
		close(entered)
		select { // bounded: a regression fails the test, it does not hang it
		case <-unblock:
		case <-time.After(30 * time.Second):
		}
	})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		require.FailNow(t, "the first call's OnDone never ran")
	}

	var others []*executor.Future
	for i := range 3 {
		f, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Echo, RunID: "other-" + string(rune('a'+i)), Input: executortest.Args{N: 10 + i}})
		require.NoError(t, err)
		others = append(others, f)
	}
	for i, f := range others {
		v, err, ok := within(t, f, 10*time.Second, "another call while an OnDone blocks")
		if ok {
			assert.NoError(t, err)
			assert.Equal(t, 2*(10+i), v.(executortest.Reply).N)
		}
	}
	release()
	_, err, ok := within(t, first, 10*time.Second, "the first call")
	if ok {
		assert.NoError(t, err)
	}
}
