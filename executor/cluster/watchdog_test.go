package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/executortest"
)

// A watcher whose consumer is gone (its server died) delivers nothing,
// and the client would notice only after missed heartbeats (10 s and
// more). The watchdog sees the stall within a second, reads the results
// from the bucket itself and replaces the watcher: calls complete with
// their results meanwhile.
func TestAStalledWatcherIsBridged(t *testing.T) {
	srv := startServer(t)
	logs := &executortest.LogBuffer{}
	ex := newExecutor(t, cluster.Options{Connection: cluster.Connection{Server: srv}, Logger: logs.Logger()})
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex)})
	warm, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Echo, RunID: "warm", Input: executortest.Args{N: 1}})
	require.NoError(t, err)
	_, err = wait(t, warm)
	require.NoError(t, err)

	// Remove the watcher's consumer behind the client's back.
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "KV_flowline-results")
	require.NoError(t, err)
	names := s.ConsumerNames(ctx)
	var watchers []string
	for name := range names.Name() {
		watchers = append(watchers, name)
	}
	require.NoError(t, names.Err())
	require.Len(t, watchers, 1, "the executor's one watcher")
	require.NoError(t, s.DeleteConsumer(ctx, watchers[0]))

	var futures []*executor.Future
	for i := range 20 {
		f, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Echo, RunID: fmt.Sprintf("after-%d", i), Input: executortest.Args{N: i}})
		require.NoError(t, err)
		futures = append(futures, f)
	}
	// A bound far below the client's own detection, to tell a stall from
	// a bridge; the watchdog needs about a second.
	for i, f := range futures {
		v, err, ok := within(t, f, 5*time.Second, "a call after the watcher's consumer was removed")
		if ok {
			assert.NoError(t, err)
			assert.Equal(t, 2*i, v.(executortest.Reply).N)
		}
	}
	assert.True(t, strings.Contains(logs.String(), "the result watcher stalled"), "the watchdog says it saw the stall:\n%s", logs.String())
}
