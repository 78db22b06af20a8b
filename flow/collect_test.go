package flow_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

// A submitter process on the cluster executor dies while a worker runs
// its calls; a resume in another process collects the results by the
// calls' ids instead of running the tasks again.
const (
	envCollectURL   = "FLOWLINE_COLLECT_URL"   // the NATS server the child submits to
	envCollectStore = "FLOWLINE_COLLECT_STORE" // the child's SQLite file
)

const collectRun = "collect-1"

// collectFlow is map slow over [0, 1, 2] -> sum. The tasks run on the
// worker in the test's process only: they count their runs in runs and
// wait for gate. In the submitter child they are only declared.
func collectFlow(runs *counter, gate <-chan struct{}) (*flow.Flow, *flow.Node[int], *executor.Registry) {
	slow := task.New("collect.slow", func(ctx context.Context, x int) (int, error) {
		runs.add(fmt.Sprintf("slow[%d]", x))
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return 10 * x, nil
	}, task.Options{})
	sum := task.New("collect.sum", func(_ context.Context, xs []int) (int, error) {
		runs.add("sum")
		t := 0
		for _, x := range xs {
			t += x
		}
		return t, nil
	}, task.Options{})
	b := flow.New("collect", flow.Options{})
	total := flow.Add(b, sum, flow.Map(b, slow, flow.Const([]int{0, 1, 2})))
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	reg, err := task.NewRegistry(slow, sum)
	if err != nil {
		panic(err)
	}
	return f, total, reg
}

// collectChild is the submitter child: it starts the run on the cluster
// executor and waits; the test kills it.
func collectChild() {
	url := os.Getenv(envCollectURL)
	if url == "" {
		return
	}
	err := func() error {
		ctx := context.Background()
		st, err := sqlite.Open(ctx, os.Getenv(envCollectStore), sqlite.Options{})
		if err != nil {
			return err
		}
		defer st.Close()
		opts := cluster.Options{Connection: cluster.Connection{URL: url}}
		reserved := os.Getenv(envCollectReserved) != "" // record_reserve_test.go
		if reserved {
			opts.Setup = reservedSetup
		}
		ex, err := cluster.New(opts)
		if err != nil {
			return err
		}
		defer ex.Shutdown(ctx)
		if reserved {
			f, _, _ := reservedCollectFlow(&counter{})
			_, err = f.Run(ctx, ex, flow.RunOptions{Store: &stallAfterReserve{Store: st}, RunID: collectRun, LeaseTTL: time.Second})
			return err
		}
		f, _, _ := collectFlow(&counter{}, make(chan struct{}))
		_, err = f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: collectRun, LeaseTTL: time.Second})
		return err
	}()
	fmt.Fprintln(os.Stderr, "collect child: the run returned, which it must not:", err)
	os.Exit(1)
}

func TestResumeCollectsClusterCallsFinishedWhileTheSubmitterWasDown(t *testing.T) {
	ctx := context.Background()
	srv, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	var runs counter
	gate := make(chan struct{})
	var closeGate sync.Once
	t.Cleanup(func() { closeGate.Do(func() { close(gate) }) })
	f, total, reg := collectFlow(&runs, gate)
	workerEx := newPool(t, 4)
	w, err := cluster.NewWorker(cluster.WorkerOptions{Connection: cluster.Connection{Server: srv},
		Registry: reg, Executor: workerEx, Concurrency: 4})
	require.NoError(t, err)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		assert.NoError(t, w.Shutdown(sctx))
	})

	path := filepath.Join(t.TempDir(), "runs.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCollectURL+"="+srv.ClientURL(), envCollectStore+"="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	// The worker runs the three calls; then the submitter dies.
	deadline := time.Now().Add(30 * time.Second)
	for runs.total() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killed = true
	require.Equal(t, 3, runs.total(), "the worker did not start the calls within 30s; the child said: %s", out.String())

	st := openStore(t, path)
	as, err := st.Attempts(ctx, collectRun)
	require.NoError(t, err)
	require.Len(t, as, 3, "every attempt's start is durable before its call is submitted")
	for _, a := range as {
		assert.Equal(t, "Running", a.State, a.Label)
		assert.Equal(t, 1, a.N, a.Label)
	}

	// The worker finishes them while no submitter is up, and records the
	// results in the bucket.
	closeGate.Do(func() { close(gate) })
	waitResults(t, srv.ClientURL(), 3)

	ex, err := cluster.New(cluster.Options{Connection: cluster.Connection{Server: srv}})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, ex.Shutdown(ctx)) })
	var res *flow.Result
	for {
		res, err = f.Resume(ctx, ex, collectRun, flow.RunOptions{Store: st})
		if !errors.Is(err, store.ErrLeaseHeld) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, err, res.Report())
	v, ok := flow.Value(res, total)
	require.True(t, ok, res.Report())
	assert.Equal(t, 30, v)
	for x := range 3 {
		label := fmt.Sprintf("slow[%d]", x)
		assert.Equal(t, 1, runs.get(label), "%s finished on the worker while the submitter was down: collected, not run again", label)
		tr, ok := res.Task("collect." + label)
		require.True(t, ok)
		require.Len(t, tr.Attempts, 1, "the collected attempt is the recorded one: no new attempt")
		assert.Equal(t, 1, tr.Attempts[0].N)
		assert.Equal(t, task.Success, tr.State)
	}
	assert.Equal(t, 1, runs.get("sum"))
	as, err = st.Attempts(ctx, collectRun)
	require.NoError(t, err)
	for _, a := range as {
		assert.Equal(t, 1, a.N, a.Label)
		assert.Equal(t, "Success", a.State, a.Label)
	}
	assert.Equal(t, uint64(4), w.Stats().Ran, "three calls before the crash, sum after: nothing ran twice")
}

// waitResults waits until the cluster's result bucket holds n results.
func waitResults(t *testing.T, url string, n int) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		kv, err := js.KeyValue(ctx, "flowline-results")
		var keys []string
		if err == nil {
			keys, err = kv.Keys(ctx)
		}
		cancel()
		if err == nil && len(keys) >= n {
			return
		}
		require.True(t, time.Now().Before(deadline), "%d results after 30s (%v): %s", len(keys), err, strings.Join(keys, ", "))
		time.Sleep(10 * time.Millisecond)
	}
}
