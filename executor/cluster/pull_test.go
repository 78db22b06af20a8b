package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
)

// TestSurplusDeliveryIsHandedBack: a call delivered to a worker none of
// whose slots is idle (an answer to a pull request the worker took for
// lost, as after a reconnect) is handed back at once, never held without
// a heartbeat: it runs once, when a slot is free, as its second delivery.
func TestSurplusDeliveryIsHandedBack(t *testing.T) {
	srv := startServer(t)
	g := newGatedTask(t)
	reg, err := executor.NewRegistry(g.h)
	require.NoError(t, err)
	setup := cluster.Setup{}
	w := startWorker(t, cluster.WorkerOptions{Connection: cluster.Connection{Server: srv}, Registry: reg,
		Setup: setup, Name: "a", Concurrency: 1})
	ex := newSubmitter(t, srv, setup)
	ctx := context.Background()
	fa, err := ex.Submit(ctx, executor.Call{Handler: g.h, Input: 1, RunID: "surplus-1"})
	require.NoError(t, err)
	waitRuns(t, g, 1) // the worker's one slot is busy
	fb, err := ex.Submit(ctx, executor.Call{Handler: g.h, Input: 2, RunID: "surplus-2"})
	require.NoError(t, err)

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, "FLOWLINE_CALLS")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 2
	}, 10*time.Second, time.Millisecond, "the second call is queued")
	// A pull request replying to the worker's inbox, as one it gave up on.
	require.NoError(t, nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.FLOWLINE_CALLS.flowline-workers",
		cluster.PullInbox(w)+".0", []byte(`{"batch":1,"expires":1000000000}`)))
	require.Eventually(t, func() bool { return w.Stats().HandedBack == 1 }, 10*time.Second, time.Millisecond,
		"the surplus delivery is handed back")
	assert.Equal(t, int64(1), g.runs.Load(), "the second call did not run while the slot was busy")

	g.open()
	v, err := wait(t, fa)
	require.NoError(t, err)
	assert.Equal(t, 10, v)
	v, err = wait(t, fb)
	require.NoError(t, err)
	assert.Equal(t, 20, v)
	assert.Equal(t, 2, fb.Deliveries(), "run from its second delivery")
	assert.Equal(t, int64(2), g.runs.Load(), "each call ran once")
}
