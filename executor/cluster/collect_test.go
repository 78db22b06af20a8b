package cluster_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
)

// gatedTask counts its runs (a side effect outside the cluster) and waits
// for its gate.
type gatedTask struct {
	runs atomic.Int64
	gate chan struct{}
	once sync.Once
	h    *executor.Handler
}

func newGatedTask(t *testing.T) *gatedTask {
	g := &gatedTask{gate: make(chan struct{})}
	g.h = executor.NewHandler("collect.gated", func(ctx context.Context, x int) (int, error) {
		g.runs.Add(1)
		select {
		case <-g.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return 10 * x, nil
	}, executor.JSON{})
	t.Cleanup(g.open)
	return g
}

func (g *gatedTask) open() { g.once.Do(func() { close(g.gate) }) }

func newSubmitter(t *testing.T, srv *natsserver.Server, setup cluster.Setup) *cluster.Executor {
	t.Helper()
	ex, err := cluster.New(cluster.Options{Connection: cluster.Connection{Server: srv}, Setup: fast(setup)})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, ex.Shutdown(ctx))
	})
	return ex
}

func waitRuns(t *testing.T, g *gatedTask, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for g.runs.Load() < n {
		require.True(t, time.Now().Before(deadline), "the worker ran %d calls, want %d", g.runs.Load(), n)
		time.Sleep(2 * time.Millisecond)
	}
}

// TestCollectJoinsACallAnotherSubmitterStarted: a call submitted by one
// executor and running on a worker is collected by another executor (as
// a resumed run does after its first submitter died): the second gets the
// result when the worker records it, and the task ran once. A third
// executor, after the result is recorded, gets it from the bucket at
// once.
func TestCollectJoinsACallAnotherSubmitterStarted(t *testing.T) {
	srv := startServer(t)
	g := newGatedTask(t)
	reg, err := executor.NewRegistry(g.h)
	require.NoError(t, err)
	w := startWorker(t, cluster.WorkerOptions{Connection: cluster.Connection{Server: srv}, Registry: reg})
	call := executor.Call{Handler: g.h, Input: 4, RunID: "run-1/collect.gated", Attempt: 1}
	ctx := context.Background()

	first := newSubmitter(t, srv, cluster.Setup{})
	f1, err := first.Submit(ctx, call)
	require.NoError(t, err)
	waitRuns(t, g, 1)

	second := newSubmitter(t, srv, cluster.Setup{})
	f2, err := second.Collect(ctx, call)
	require.NoError(t, err)
	_, _, done := f2.Result()
	assert.False(t, done, "the call is still running: nothing to collect yet")
	g.open()
	v, err := f2.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 40, v)
	v, err = f1.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 40, v)

	third := newSubmitter(t, srv, cluster.Setup{})
	f3, err := third.Collect(ctx, call)
	require.NoError(t, err)
	v, err = f3.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 40, v)
	assert.Equal(t, 1, f3.Deliveries(), "the recorded delivery")
	assert.NotEmpty(t, f3.Worker(), "the recorded worker")

	assert.Equal(t, int64(1), g.runs.Load(), "collected, never run again")
	assert.Equal(t, uint64(1), w.Stats().Received, "deduplicated: the stream held the call once")
}

// TestCollectFindsAResultPastTheDedupWindow: once the stream has
// forgotten the call's id, the result bucket still answers it.
func TestCollectFindsAResultPastTheDedupWindow(t *testing.T) {
	srv := startServer(t)
	g := newGatedTask(t)
	g.open()
	reg, err := executor.NewRegistry(g.h)
	require.NoError(t, err)
	setup := cluster.Setup{DedupWindow: 100 * time.Millisecond}
	startWorker(t, cluster.WorkerOptions{Connection: cluster.Connection{Server: srv}, Registry: reg, Setup: setup})
	call := executor.Call{Handler: g.h, Input: 2, RunID: "run-2/collect.gated", Attempt: 3}
	ctx := context.Background()
	first := newSubmitter(t, srv, setup)
	v, err := executor.Run(ctx, first, call)
	require.NoError(t, err)
	assert.Equal(t, 20, v)
	time.Sleep(300 * time.Millisecond) // past the dedup window: a publish would queue it again

	second := newSubmitter(t, srv, setup)
	f, err := second.Collect(ctx, call)
	require.NoError(t, err)
	v, err = f.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 20, v)
	assert.Equal(t, int64(1), g.runs.Load(), "answered from the bucket, not run again")
}

// TestCollectRunsACallThatWasNeverSubmitted: an attempt whose submitter
// died before publishing it runs now, under its own identity, once.
func TestCollectRunsACallThatWasNeverSubmitted(t *testing.T) {
	srv := startServer(t)
	g := newGatedTask(t)
	g.open()
	reg, err := executor.NewRegistry(g.h)
	require.NoError(t, err)
	startWorker(t, cluster.WorkerOptions{Connection: cluster.Connection{Server: srv}, Registry: reg})
	ex := newSubmitter(t, srv, cluster.Setup{})
	ctx := context.Background()
	f, err := ex.Collect(ctx, executor.Call{Handler: g.h, Input: 5, RunID: "run-3/collect.gated", Attempt: 2})
	require.NoError(t, err)
	v, err := f.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 50, v)
	assert.Equal(t, int64(1), g.runs.Load())

	_, err = ex.Collect(ctx, executor.Call{Handler: g.h, Input: 5})
	assert.ErrorContains(t, err, "RunID", "a call without a RunID has no identity to collect by")
}
