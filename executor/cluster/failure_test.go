package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/internal/envelope"
	"github.com/flowline-go/flowline/executor/cluster/internal/freeport"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
)

// submitAll submits n cooperative sleeps of d, numbered 0..n-1, and
// returns their calls and futures.
func submitAll(t *testing.T, ex *cluster.Executor, run string, n int, d time.Duration) ([]executor.Call, []*executor.Future) {
	t.Helper()
	calls := make([]executor.Call, n)
	futures := make([]*executor.Future, n)
	for i := range n {
		calls[i] = executor.Call{Handler: executortest.Sleep, Input: args(i, d), RunID: fmt.Sprintf("%s-%d", run, i), Limit: time.Minute}
		f, err := ex.Submit(context.Background(), calls[i])
		require.NoError(t, err)
		futures[i] = f
	}
	return calls, futures
}

// doneBy counts the futures completed by workers whose name starts with
// prefix.
func doneBy(futures []*executor.Future, prefix string) int {
	n := 0
	for _, f := range futures {
		if _, _, ok := f.Result(); ok && strings.HasPrefix(f.Worker(), prefix) {
			n++
		}
	}
	return n
}

func TestKilledWorkerProcessLosesNoCall(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	url := ex.ClientURL()
	a := startWorkerProcess(t, url, "a")
	startWorkerProcess(t, url, "b")
	waitPulling(t, url, cluster.Setup{}, 2)

	const n = 40
	calls, futures := submitAll(t, ex, "kill", n, 100*time.Millisecond)
	// Kill a while it is busy: it has finished a few calls and holds more.
	require.Eventually(t, func() bool { return doneBy(futures, "a") >= workerConcurrency }, time.Minute, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // half-way through its next calls
	a.kill()
	killedAt := time.Now()

	for i, f := range futures {
		v, err := wait(t, f)
		require.NoError(t, err, "call %d", i)
		assert.Equal(t, executortest.Reply{N: i}, v, "call %d", i)
	}
	t.Logf("all %d calls done %v after the kill; %d by a, %d by b", n, time.Since(killedAt).Round(time.Millisecond),
		doneBy(futures, "a"), doneBy(futures, "b"))
	assert.Equal(t, uint64(n), ex.Stats().Succeeded)

	// Every call has exactly one result, and the calls a held when it
	// died were delivered again, to b.
	js := testConn(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, "flowline-results")
	require.NoError(t, err)
	redelivered := 0
	for i, c := range calls {
		history, err := kv.History(ctx, envelope.Key(c.ID()))
		require.NoError(t, err)
		require.Len(t, history, 1, "call %s has %d results", c.ID(), len(history))
		rec, err := envelope.DecodeResult(history[0].Value())
		require.NoError(t, err)
		// The caller sees the deliveries its call took.
		assert.Equal(t, int(rec.Delivery), futures[i].Deliveries(), "call %s", c.ID())
		if rec.Delivery > 1 {
			redelivered++
			assert.True(t, strings.HasPrefix(rec.Worker, "b"), "redelivered call %s ran on %s", c.ID(), rec.Worker)
		}
	}
	assert.Positive(t, redelivered, "no call was in flight on the killed worker")
	stream, err := js.Stream(ctx, "FLOWLINE_CALLS")
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	assert.Zero(t, info.State.Msgs, "calls left in the stream")
}

func TestStreamLeaderFailover(t *testing.T) {
	ports := freeport.Loopback(t, 3)
	servers := make([]*natsserver.Server, 3)
	var urls []string
	for i := range servers {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		srv, err := natsserver.Start(natsserver.Options{
			Name:    fmt.Sprintf("s%d", i),
			Listen:  "127.0.0.1:0",
			Cluster: &natsserver.Cluster{Name: "flowline-test", Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes},
		})
		require.NoError(t, err)
		t.Cleanup(srv.Shutdown)
		servers[i] = srv
		urls = append(urls, srv.ClientURL())
	}
	conn := cluster.Connection{URL: strings.Join(urls, ",")}
	setup := cluster.Setup{Replicas: 3, AckWait: 2 * time.Second}

	// The cluster is still electing its JetStream leader: New waits for it.
	ex, err := cluster.New(cluster.Options{Connection: conn, Setup: setup})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, ex.Shutdown(ctx))
	})
	startWorker(t, cluster.WorkerOptions{Connection: conn, Setup: setup, Name: "w1"})
	startWorker(t, cluster.WorkerOptions{Connection: conn, Setup: setup, Name: "w2"})

	const n = 100
	_, futures := submitAll(t, ex, "failover", n, 20*time.Millisecond)
	require.Eventually(t, func() bool { return doneBy(futures, "w") >= 10 }, time.Minute, time.Millisecond)

	js := testConn(t, conn.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := js.Stream(ctx, "FLOWLINE_CALLS")
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.NotNil(t, info.Cluster)
	var stopped atomic.Bool
	for _, srv := range servers {
		if srv.Name() == info.Cluster.Leader {
			t.Logf("stopping the stream leader %s", srv.Name())
			srv.Shutdown()
			stopped.Store(true)
		}
	}
	require.True(t, stopped.Load(), "leader %q is not one of ours", info.Cluster.Leader)
	stoppedAt := time.Now()
	// Calls submitted while the stream has no leader are published again
	// until one is elected.
	_, more := submitAll(t, ex, "during", n/2, 20*time.Millisecond)

	for i, f := range futures {
		v, err := wait(t, f)
		require.NoError(t, err, "call %d", i)
		assert.Equal(t, executortest.Reply{N: i}, v, "call %d", i)
	}
	for i, f := range more {
		v, err := wait(t, f)
		require.NoError(t, err, "call %d submitted during the election", i)
		assert.Equal(t, executortest.Reply{N: i}, v, "call %d submitted during the election", i)
	}
	t.Logf("all %d calls done %v after the leader stopped", n+n/2, time.Since(stoppedAt).Round(time.Millisecond))
	assert.Equal(t, uint64(n+n/2), ex.Stats().Succeeded)
}

func TestReplicaMismatchIsRefused(t *testing.T) {
	ex := newExecutor(t, cluster.Options{}) // creates everything with 1 replica
	for _, side := range []string{"submitter", "worker"} {
		var err error
		setup := fast(cluster.Setup{Replicas: 3})
		if side == "submitter" {
			_, err = cluster.New(cluster.Options{Connection: inProcess(ex), Setup: setup})
		} else {
			runner := local.New(local.Options{})
			_, err = cluster.NewWorker(cluster.WorkerOptions{Connection: inProcess(ex), Setup: setup,
				Registry: executortest.Registry(), Executor: runner})
			assert.NoError(t, runner.Shutdown(context.Background()))
		}
		var re *cluster.ReplicasError
		require.ErrorAs(t, err, &re, side)
		assert.Equal(t, cluster.ReplicasError{Kind: "stream", Name: "FLOWLINE_CALLS", Has: 1, Want: 3}, *re, side)
		assert.Contains(t, err.Error(), "set Replicas alike", side)
	}
}
