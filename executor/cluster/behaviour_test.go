package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
)

// newExecutor returns an executor shut down when the test ends; without a
// URL or a Server in opts it gets an embedded server of its own, listening
// on loopback, which its Shutdown stops. Register it before the workers
// that use its server, so that their cleanups run first.
func newExecutor(t *testing.T, opts cluster.Options) *cluster.Executor {
	t.Helper()
	opts.Setup = fast(opts.Setup)
	if opts.URL == "" && opts.Server == nil {
		opts.Server, opts.StopServer = startServer(t), true
	}
	ex, err := cluster.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, ex.Shutdown(ctx))
	})
	return ex
}

func inProcess(ex *cluster.Executor) cluster.Connection {
	return cluster.Connection{Server: ex.Server()}
}

func args(n int, sleep time.Duration) executortest.Args {
	return executortest.Args{N: n, Sleep: sleep, Cooperative: true}
}

func wait(t *testing.T, f *executor.Future) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = f.Wait(ctx)
	v, err, ok := f.Result()
	require.True(t, ok, "no result within a minute")
	return v, err
}

func lineCount(path string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), "\n")
}

func TestCancelStopsTheRemoteCall(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	runner := local.New(local.Options{})
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Executor: runner})

	path := filepath.Join(t.TempDir(), "ticks")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// No limit: only the cancellation can end it.
	f, err := ex.Submit(ctx, executor.Call{Handler: executortest.Append, RunID: "cancel",
		Input: executortest.Args{Path: path, Tick: 5 * time.Millisecond, Sleep: time.Minute, Cooperative: true}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return lineCount(path) > 2 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	_, err = wait(t, f)
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, executor.ErrTimeout)
	var ce *executor.CanceledError
	assert.ErrorAs(t, err, &ce)

	// The worker's executor saw the cancellation and the task stopped.
	require.Eventually(t, func() bool { return runner.Stats().Canceled == 1 }, 10*time.Second, 5*time.Millisecond)
	n := lineCount(path)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, n, lineCount(path), "the task kept running after its cancellation")
	assert.Equal(t, executor.Stats{Submitted: 1, Canceled: 1}, ex.Stats())
}

// deafExecutor starts every call and never finishes it: it ignores
// limits, as a broken worker executor would, and only a cancellation ends
// a call.
type deafExecutor struct {
	mu    sync.Mutex
	stops []func() bool
}

func (d *deafExecutor) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	p := executor.NewPromise()
	stop := context.AfterFunc(ctx, func() { p.Complete(nil, executor.NewCanceledError(call.Name(), ctx)) })
	d.mu.Lock()
	d.stops = append(d.stops, stop)
	d.mu.Unlock()
	return p.Future(), nil
}

func (d *deafExecutor) Enforcement() executor.Enforcement { return executor.Soft }
func (d *deafExecutor) Shutdown(context.Context) error    { return nil }
func (d *deafExecutor) Stats() executor.Stats             { return executor.Stats{} }

func TestNoResultByLimitGraceAndMarginIsATimeout(t *testing.T) {
	const margin, limit, grace = 300 * time.Millisecond, 100 * time.Millisecond, 50 * time.Millisecond
	ex := newExecutor(t, cluster.Options{TimeoutMargin: margin})
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Executor: &deafExecutor{}})

	call := executor.Call{Handler: executortest.Sleep, Input: args(1, time.Hour), RunID: "deaf", Limit: limit, Grace: grace}
	start := time.Now()
	f, err := ex.Submit(context.Background(), call)
	require.NoError(t, err)
	_, err = wait(t, f)
	elapsed := time.Since(start)
	var te *executor.TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, executortest.Sleep.Name(), te.Task)
	assert.Equal(t, limit, te.Limit)
	assert.Equal(t, executor.Soft, te.Enforcement)
	assert.False(t, te.Stopped, "the submitter cannot know that the work stopped")
	// fast's AckWait is a second: a lost worker's call would have been
	// delivered again by then.
	assert.GreaterOrEqual(t, te.Elapsed, limit+grace+time.Second+margin)
	assert.GreaterOrEqual(t, elapsed, limit+grace+time.Second+margin)
	assert.Equal(t, uint64(1), ex.Stats().TimedOut)

	// The verdict was recorded as the call's result: submitting the same
	// call again is deduplicated and answered with it.
	f, err = ex.Submit(context.Background(), call)
	require.NoError(t, err)
	_, err = wait(t, f)
	require.ErrorAs(t, err, &te)
	assert.Equal(t, limit, te.Limit)
}

func TestResubmissionIsDeduplicated(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	w := startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex)})

	call := executor.Call{Handler: executortest.Sleep, Input: args(7, 200*time.Millisecond), RunID: "dedup", Attempt: 2}
	f1, err := ex.Submit(context.Background(), call)
	require.NoError(t, err)
	f2, err := ex.Submit(context.Background(), call)
	require.NoError(t, err)
	for _, f := range []*executor.Future{f1, f2} {
		v, err := wait(t, f)
		require.NoError(t, err)
		assert.Equal(t, executortest.Reply{N: 7}, v)
	}
	// Later, once the result is recorded, a re-submission reads it.
	f3, err := ex.Submit(context.Background(), call)
	require.NoError(t, err)
	v, err := wait(t, f3)
	require.NoError(t, err)
	assert.Equal(t, executortest.Reply{N: 7}, v)
	assert.Equal(t, uint64(1), w.Stats().Ran, "the call ran more than once")

	// Another attempt is another call.
	call.Attempt = 3
	v, err = executor.Run(context.Background(), ex, call)
	require.NoError(t, err)
	assert.Equal(t, executortest.Reply{N: 7}, v)
	assert.Equal(t, uint64(2), w.Stats().Ran)
}

func TestHardEnforcementIsNotGivenBySoftWorkers(t *testing.T) {
	ex := newExecutor(t, cluster.Options{Enforcement: executor.Hard})
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Name: "softy"})
	assert.Equal(t, executor.Hard, ex.Enforcement())
	_, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Echo, Input: args(1, 0), RunID: "hard"})
	require.Error(t, err)
	assert.Equal(t, executor.ClassFatal, executor.ClassOf(err))
	assert.Contains(t, err.Error(), "requires hard timeouts")
	assert.Contains(t, err.Error(), "softy")
}

// newStandaloneWorker starts a worker that the test shuts down itself.
func newStandaloneWorker(t *testing.T, ex *cluster.Executor, name string) (*cluster.Worker, *local.Executor) {
	t.Helper()
	runner := local.New(local.Options{})
	w, err := cluster.NewWorker(cluster.WorkerOptions{
		Connection: inProcess(ex), Setup: fast(cluster.Setup{}), Registry: executortest.Registry(),
		Executor: runner, Concurrency: 2, Name: name,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, w.Shutdown(context.Background()))
		assert.NoError(t, runner.Shutdown(context.Background()))
	})
	return w, runner
}

func TestWorkerShutdownFinishesRunningCalls(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	w, _ := newStandaloneWorker(t, ex, "finisher")
	f, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Sleep, Input: args(3, 300*time.Millisecond), RunID: "drain"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return w.Stats().Ran == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, w.Shutdown(context.Background()))
	v, err, ok := f.Result()
	require.True(t, ok, "the call's result was recorded before Shutdown returned")
	require.NoError(t, err)
	assert.Equal(t, executortest.Reply{N: 3}, v)
	assert.True(t, strings.HasPrefix(f.Worker(), "finisher"), "worker %q", f.Worker())
	select {
	case <-w.Done():
	default:
		t.Error("Done is not closed after Shutdown")
	}
}

func TestWorkerShutdownHandsBackWhatItCannotFinish(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	w1, _ := newStandaloneWorker(t, ex, "leaver")
	f, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Sleep, Input: args(4, 500*time.Millisecond), RunID: "handback"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return w1.Stats().Ran == 1 }, 10*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = w1.Shutdown(ctx)
	var se *executor.ShutdownError
	require.ErrorAs(t, err, &se)
	require.Len(t, se.Running, 1)
	assert.Contains(t, se.Running[0], "handback")
	// At least once: the server redelivers the handed-back call at once,
	// and w1, still draining (its Shutdown gave up, not its pull), may get
	// it again and hand it back again before the next worker starts.
	assert.GreaterOrEqual(t, w1.Stats().HandedBack, uint64(1))

	// Handed back, the call is delivered to the next worker at once, not
	// after the ack wait.
	newStandaloneWorker(t, ex, "taker")
	v, err := wait(t, f)
	require.NoError(t, err)
	assert.Equal(t, executortest.Reply{N: 4}, v)
	assert.True(t, strings.HasPrefix(f.Worker(), "taker"), "worker %q", f.Worker())
	require.NoError(t, w1.Shutdown(context.Background()), "a later Shutdown waits for the call to return")
}

// testConn connects to a listening server for checks the executor does not
// expose.
func testConn(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

func TestExhaustedDeliveriesFailTheCall(t *testing.T) {
	setup := cluster.Setup{AckWait: 200 * time.Millisecond, MaxDeliveries: 2}
	ex := newExecutor(t, cluster.Options{Setup: setup})
	js := testConn(t, ex.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons, err := js.Consumer(ctx, "FLOWLINE_CALLS", "flowline-workers")
	require.NoError(t, err)

	f, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Echo, Input: args(1, 0), RunID: "doomed"})
	require.NoError(t, err)
	// A worker that takes the call and dies, twice: nothing acknowledges it.
	for i := 1; i <= 2; i++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
		require.NoError(t, err)
		msg := <-batch.Messages()
		require.NotNil(t, msg, "delivery %d", i)
		meta, err := msg.Metadata()
		require.NoError(t, err)
		assert.Equal(t, uint64(i), meta.NumDelivered)
	}
	// JetStream gives up on the call when it would deliver it a third
	// time, which it tries when a worker asks for work (an idle worker
	// slot always does): ask, and get nothing.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
	require.NoError(t, err)
	assert.Nil(t, <-batch.Messages(), "delivered a third time")
	_, err = wait(t, f)
	var ce *executor.CrashError
	require.ErrorAs(t, err, &ce)
	assert.ErrorIs(t, err, executor.ErrCrash)
	assert.Equal(t, executortest.Echo.Name(), ce.Task)
	assert.Contains(t, ce.Reason, "delivered 2 times")

	// The call does not linger in the stream.
	stream, err := js.Stream(ctx, "FLOWLINE_CALLS")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, 10*time.Second, 10*time.Millisecond)
}

func TestAuthIsPassedThrough(t *testing.T) {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(),
		Username: "flow", Password: "line",
	})
	require.NoError(t, err)
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	require.True(t, srv.ReadyForConnections(10*time.Second))

	_, err = cluster.New(cluster.Options{Connection: cluster.Connection{URL: srv.ClientURL(), User: "flow", Password: "wrong",
		NATSOptions: []nats.Option{nats.MaxReconnects(0)}}})
	require.Error(t, err, "a wrong password must be refused")

	conn := cluster.Connection{URL: srv.ClientURL(), User: "flow", Password: "line"}
	ex, err := cluster.New(cluster.Options{Connection: conn, Setup: fast(cluster.Setup{})})
	require.NoError(t, err)
	assert.Nil(t, ex.Server(), "connected to a URL, not to an embedded server")
	assert.Equal(t, srv.ClientURL(), ex.ClientURL())
	t.Cleanup(func() { assert.NoError(t, ex.Shutdown(context.Background())) })
	startWorker(t, cluster.WorkerOptions{Connection: conn})
	v, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Echo, Input: args(5, 0), RunID: "auth"})
	require.NoError(t, err)
	assert.Equal(t, 10, v.(executortest.Reply).N)
}

func TestNamesAndSettingsAreConfigurable(t *testing.T) {
	setup := cluster.Setup{Prefix: "acme.jobs", Stream: "ACME", Consumer: "acme-workers", Bucket: "acme-results",
		MaxDeliveries: 3, DedupWindow: time.Minute, ResultTTL: time.Hour, Memory: true}
	ex := newExecutor(t, cluster.Options{Setup: setup})
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Setup: setup})
	v, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Echo, Input: args(2, 0), RunID: "names"})
	require.NoError(t, err)
	assert.Equal(t, 4, v.(executortest.Reply).N)

	js := testConn(t, ex.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "ACME")
	require.NoError(t, err)
	info := stream.CachedInfo()
	assert.Equal(t, []string{"acme.jobs.calls"}, info.Config.Subjects)
	assert.Equal(t, jetstream.WorkQueuePolicy, info.Config.Retention)
	assert.Equal(t, jetstream.MemoryStorage, info.Config.Storage)
	assert.Equal(t, time.Minute, info.Config.Duplicates)
	cons, err := stream.Consumer(ctx, "acme-workers")
	require.NoError(t, err)
	assert.Equal(t, 3, cons.CachedInfo().Config.MaxDeliver)
	assert.Equal(t, time.Second, cons.CachedInfo().Config.AckWait)
	kv, err := js.KeyValue(ctx, "acme-results")
	require.NoError(t, err)
	status, err := kv.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, time.Hour, status.TTL())
	assert.Equal(t, uint64(1), status.Values())
}

func TestOptionsAreChecked(t *testing.T) {
	for name, setup := range map[string]cluster.Setup{
		"stream with a dot": {Stream: "a.b"},
		"prefix wildcard":   {Prefix: "a.*"},
		"bucket with space": {Bucket: "a b"},
		"ttl below window":  {DedupWindow: time.Hour, ResultTTL: time.Minute},
	} {
		_, err := cluster.New(cluster.Options{Setup: setup, Connection: cluster.Connection{URL: "nats://127.0.0.1:1"}})
		assert.Error(t, err, name)
	}
	_, err := cluster.New(cluster.Options{Enforcement: 7, Connection: cluster.Connection{URL: "nats://127.0.0.1:1"}})
	assert.Error(t, err)
	_, err = cluster.New(cluster.Options{})
	assert.ErrorContains(t, err, "no NATS URL and no in-process Server")

	reg := executortest.Registry()
	runner := local.New(local.Options{})
	defer runner.Shutdown(context.Background())
	for name, opts := range map[string]cluster.WorkerOptions{
		"no registry":   {Executor: runner, Connection: cluster.Connection{URL: "nats://127.0.0.1:1"}},
		"no executor":   {Registry: reg, Connection: cluster.Connection{URL: "nats://127.0.0.1:1"}},
		"no connection": {Registry: reg, Executor: runner},
	} {
		_, err := cluster.NewWorker(opts)
		assert.Error(t, err, name)
	}
}
