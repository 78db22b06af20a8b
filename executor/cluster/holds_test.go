package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/executortest"
)

// TestCallDeliveredAgainIsLeftToItsLiveHolder models a new consumer
// leader delivering a call again while the worker that holds it is alive
// and has not recorded its result (issue 14: the bucket has no leader, so
// a look into it finds nothing): worker a runs the call and its heartbeats
// do not reach the consumer within the ack wait, so the consumer delivers
// the call again, to b. b must not run it: a holds it. Once a records the
// result, the call is answered once, by a, and ran once.
func TestCallDeliveredAgainIsLeftToItsLiveHolder(t *testing.T) {
	srv := startServer(t)
	g := newGatedTask(t)
	reg, err := executor.NewRegistry(g.h)
	require.NoError(t, err)
	// Enough deliveries for the redeliveries b leaves to a while a never
	// heartbeats (a live holder's heartbeats would push them back).
	setup := cluster.Setup{MaxDeliveries: 100}
	conn := cluster.Connection{Server: srv}
	startWorker(t, cluster.WorkerOptions{Connection: conn, Registry: reg, Setup: setup, Name: "a",
		Concurrency: 1, Heartbeat: time.Hour})
	ex := newSubmitter(t, srv, setup)
	ctx := context.Background()
	f, err := ex.Submit(ctx, executor.Call{Handler: g.h, Input: 3, RunID: "held-1", Attempt: 1})
	require.NoError(t, err)
	waitRuns(t, g, 1)

	b := startWorker(t, cluster.WorkerOptions{Connection: conn, Registry: reg, Setup: setup, Name: "b", Concurrency: 1})
	t.Cleanup(g.open) // before the workers' shutdowns, if the test fails
	// The ack wait is 1 s: b is given the call again within a few.
	require.Eventually(t, func() bool { return b.Stats().Received >= 2 || g.runs.Load() > 1 }, 30*time.Second,
		5*time.Millisecond, "the consumer delivers the held call again, to b")
	// A delivery is counted received before b handles it: the last one
	// may still be on its way to being left to a.
	assert.Eventually(t, func() bool { st := b.Stats(); return st.Received == st.Skipped }, 10*time.Second,
		time.Millisecond, "b left every delivery to a")
	assert.Equal(t, int64(1), g.runs.Load(), "b ran a call that a holds")
	assert.Equal(t, uint64(0), b.Stats().Ran)
	assert.Equal(t, uint64(0), b.Stats().HandedBack)

	g.open()
	v, err := f.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 30, v)
	assert.Equal(t, "a", f.Worker())
	assert.Equal(t, 1, f.Deliveries(), "a's first delivery is the one recorded")
	assert.Equal(t, int64(1), g.runs.Load(), "the call ran once")
}

// TestCallDeliveredAgainRunsWhenItsHolderIsGone: the worker that held a
// call was SIGKILLed; the call delivered again finds no holder, and the
// worker it is delivered to runs it.
func TestCallDeliveredAgainRunsWhenItsHolderIsGone(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	url := ex.ClientURL()
	a := startWorkerProcess(t, url, "a")
	waitPulling(t, url, cluster.Setup{}, 1)
	ctx := context.Background()
	f, err := ex.Submit(ctx, executor.Call{Handler: executortest.Sleep, Input: args(7, 2*time.Second),
		RunID: "gone-1", Limit: time.Minute})
	require.NoError(t, err)
	js := testConn(t, url)
	require.Eventually(t, func() bool {
		c, err := js.Consumer(ctx, "FLOWLINE_CALLS", "flowline-workers")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 1
	}, 30*time.Second, time.Millisecond, "a takes the call")
	a.kill()

	b := startWorker(t, cluster.WorkerOptions{Connection: cluster.Connection{URL: url}, Name: "b"})
	v, err := wait(t, f)
	require.NoError(t, err)
	assert.Equal(t, executortest.Reply{N: 7}, v)
	assert.True(t, strings.HasPrefix(f.Worker(), "b"), "run by b, not %q", f.Worker())
	assert.GreaterOrEqual(t, f.Deliveries(), 2)
	assert.Equal(t, uint64(1), b.Stats().Ran)
}
