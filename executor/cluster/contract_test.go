package cluster_test

import (
	"context"
	"fmt"
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
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
)

// bigResult returns a string of n bytes.
var bigResult = executor.NewHandler("cluster-test.big", func(_ context.Context, n int) (string, error) {
	return strings.Repeat("x", n), nil
}, nil)

// registryWith is the suite's registry plus handlers.
func registryWith(t *testing.T, hs ...*executor.Handler) *executor.Registry {
	t.Helper()
	reg := executortest.Registry()
	for _, h := range hs {
		require.NoError(t, reg.Register(h))
	}
	return reg
}

func TestCallsWithoutRunIDNeverShareAResult(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex)})

	const n = 200
	futures := make([]*executor.Future, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			f, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Echo,
				Input: executortest.Args{N: i, Text: fmt.Sprint("token-", i)}})
			if assert.NoError(t, err) {
				futures[i] = f
			}
		})
	}
	wg.Wait()
	for i, f := range futures {
		require.NotNil(t, f)
		v, err := wait(t, f)
		require.NoError(t, err)
		assert.Equal(t, executortest.Reply{N: 2 * i, Text: fmt.Sprint("token-", i)}, v, "call %d", i)
	}
	assert.Equal(t, uint64(n), ex.Stats().Succeeded)
}

func TestOversizedResultIsAPromptOutputError(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	// One slot: a wedged slot would lose every later call.
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Concurrency: 1,
		Registry: registryWith(t, bigResult)})

	// The embedded server takes 1 MiB messages.
	_, err := executor.Run(context.Background(), ex, executor.Call{Handler: bigResult, Input: 2 << 20})
	var oe *executor.OutputError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, bigResult.Name(), oe.Task)
	assert.Contains(t, oe.Error(), "bytes the NATS server takes")

	// The slot serves the next call.
	v, err := executor.Run(context.Background(), ex, executor.Call{Handler: bigResult, Input: 10})
	require.NoError(t, err)
	assert.Equal(t, "xxxxxxxxxx", v)
}

func TestResultRefusedByTheBucketIsAnOutputError(t *testing.T) {
	srv := startServer(t)
	// A bucket that takes small values only: the server refuses a larger
	// record for good, which retrying cannot change.
	js := testConn(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "flowline-results", MaxValueSize: 1000, History: 1})
	require.NoError(t, err)
	ex := newExecutor(t, cluster.Options{Connection: cluster.Connection{Server: srv}})
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Concurrency: 1, Registry: registryWith(t, bigResult)})

	_, err = executor.Run(context.Background(), ex, executor.Call{Handler: bigResult, Input: 5000})
	var oe *executor.OutputError
	require.ErrorAs(t, err, &oe)
	assert.Contains(t, oe.Error(), "refused")

	v, err := executor.Run(context.Background(), ex, executor.Call{Handler: bigResult, Input: 3})
	require.NoError(t, err)
	assert.Equal(t, "xxx", v)
}

func TestOversizedInputIsAnInputErrorAtSubmit(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	w := startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex)})
	f, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Echo,
		Input: executortest.Args{Text: strings.Repeat("y", 2<<20)}})
	require.NoError(t, err)
	v, err, ok := f.Result()
	require.True(t, ok, "the future is not complete at once")
	assert.Nil(t, v)
	var ie *executor.InputError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, executortest.Echo.Name(), ie.Task)
	assert.Equal(t, uint64(0), w.Stats().Received, "an oversized call was published")
	assert.Equal(t, executor.Stats{Submitted: 1, Failed: 1}, ex.Stats())
}

// slowKill is a hard executor whose kill takes a while: a cancelled call
// returns killDelay after its cancellation, as a process group that is
// sent SIGTERM and reaped does.
type slowKill struct {
	inner     *local.Executor
	killDelay time.Duration
	mu        sync.Mutex
	returned  []time.Time // when each cancelled call returned
	wg        sync.WaitGroup
}

func (s *slowKill) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	f, err := s.inner.Submit(ctx, call)
	if err != nil {
		return nil, err
	}
	p := executor.NewPromise()
	s.wg.Go(func() {
		v, err := f.Wait(context.Background())
		if ctx.Err() != nil {
			time.Sleep(s.killDelay)
			s.mu.Lock()
			s.returned = append(s.returned, time.Now())
			s.mu.Unlock()
		}
		p.Complete(v, err)
	})
	return p.Future(), nil
}

func (s *slowKill) Enforcement() executor.Enforcement { return executor.Hard }
func (s *slowKill) Stats() executor.Stats             { return s.inner.Stats() }
func (s *slowKill) Shutdown(ctx context.Context) error {
	s.wg.Wait()
	return s.inner.Shutdown(ctx)
}

func TestHardCancellationAnswersOnceTheWorkIsDead(t *testing.T) {
	ex := newExecutor(t, cluster.Options{Enforcement: executor.Hard})
	hard := &slowKill{inner: local.New(local.Options{}), killDelay: 300 * time.Millisecond}
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Executor: hard})

	ctx, cancel := context.WithCancel(context.Background())
	f, err := ex.Submit(ctx, executor.Call{Handler: executortest.Sleep, RunID: "hard-cancel",
		Input: executortest.Args{Sleep: time.Minute, Cooperative: true}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hard.inner.Stats().Running == 1 }, 10*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // for the start notice to reach the submitter
	cancel()
	_, err = executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Echo, RunID: "other"})
	require.NoError(t, err)
	_, err = wait(t, f)
	answered := time.Now()
	require.ErrorIs(t, err, context.Canceled)
	hard.mu.Lock()
	returned := hard.returned
	hard.mu.Unlock()
	require.Len(t, returned, 1, "the worker's executor did not return the cancelled call")
	assert.False(t, answered.Before(returned[0]), "the future was answered before the worker's executor returned the call")
}

func TestHardCancellationWithoutAReportIsBounded(t *testing.T) {
	const margin = 300 * time.Millisecond
	ex := newExecutor(t, cluster.Options{Enforcement: executor.Hard, TimeoutMargin: margin})
	// The worker's executor never returns a call, even a cancelled one.
	deaf := &hardDeaf{}
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Executor: deaf})
	ctx, cancel := context.WithCancel(context.Background())
	f, err := ex.Submit(ctx, executor.Call{Handler: executortest.Sleep, RunID: "hard-deaf", Limit: time.Hour,
		Input: executortest.Args{Sleep: time.Hour}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return deaf.submitted() == 1 }, 10*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	_, err = wait(t, f)
	require.ErrorIs(t, err, context.Canceled)
	assert.GreaterOrEqual(t, time.Since(start), margin, "answered before the bound without a report")
	deaf.release()
}

// hardDeaf declares Hard and answers no call until released.
type hardDeaf struct {
	mu       sync.Mutex
	promises []executor.Promise
	n        int
}

func (d *hardDeaf) Submit(_ context.Context, _ executor.Call) (*executor.Future, error) {
	p := executor.NewPromise()
	d.mu.Lock()
	d.promises = append(d.promises, p)
	d.n++
	d.mu.Unlock()
	return p.Future(), nil
}

func (d *hardDeaf) submitted() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (d *hardDeaf) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.promises {
		p.Complete(nil, context.Canceled)
	}
	d.promises = nil
}

func (d *hardDeaf) Enforcement() executor.Enforcement { return executor.Hard }
func (d *hardDeaf) Shutdown(context.Context) error    { d.release(); return nil }
func (d *hardDeaf) Stats() executor.Stats             { return executor.Stats{} }

func TestSubmitWaitsForRoomAndTrySubmitDoesNot(t *testing.T) {
	srv := startServer(t)
	// The stream takes another subject, and a plain subscriber holds the
	// calls' publishes without answering: a submission stays pending
	// until the test answers it as the stream would.
	js := testConn(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FLOWLINE_CALLS", Subjects: []string{"elsewhere.calls"},
		Retention: jetstream.WorkQueuePolicy})
	require.NoError(t, err)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	held := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("flowline.calls", held)
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(t, nc.Flush())

	ex := newExecutor(t, cluster.Options{Connection: cluster.Connection{Server: srv}, MaxPending: 1, PublishTimeout: time.Hour})
	call := executor.Call{Handler: executortest.Echo, Input: args(1, 0)}
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	first, err := ex.Submit(cctx, call)
	require.NoError(t, err)
	m1 := <-held

	_, err = ex.TrySubmit(context.Background(), call)
	require.ErrorIs(t, err, executor.ErrQueueFull)

	start := time.Now()
	tctx, tcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer tcancel()
	_, err = ex.Submit(tctx, call)
	assert.Equal(t, context.DeadlineExceeded, err, "not exactly ctx.Err()")
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	// Answered, the first publish gives its room to a waiting Submit.
	type submitted struct {
		f   *executor.Future
		err error
	}
	got := make(chan submitted, 1)
	go func() {
		f, err := ex.Submit(cctx, call)
		got <- submitted{f, err}
	}()
	select {
	case <-got:
		t.Fatal("Submit did not wait for room")
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, m1.Respond([]byte(`{"stream":"FLOWLINE_CALLS","seq":1}`)))
	s := <-got
	require.NoError(t, s.err)
	<-held
	ccancel() // nothing will answer these calls: cancel them
	for _, f := range []*executor.Future{first, s.f} {
		_, err := wait(t, f)
		assert.ErrorIs(t, err, context.Canceled)
	}
	assert.Equal(t, executor.Stats{Submitted: 2, Canceled: 2}, ex.Stats())
}

func TestGoexitIsAPanicAndTheSlotServesOn(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	// One slot, on executor/local, which runs a call without a limit on
	// the slot's own goroutine: Goexit ends that goroutine.
	w := startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Concurrency: 1})
	for i := range 3 {
		for _, limit := range []time.Duration{0, time.Minute} {
			_, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Goexit, Limit: limit})
			var pe *executor.PanicError
			require.ErrorAs(t, err, &pe, "call %d, limit %v", i, limit)
			assert.ErrorIs(t, err, executor.ErrGoexit)
			assert.Equal(t, executor.ClassPanic, executor.ClassOf(err))
		}
	}
	v, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Echo, Input: args(4, 0)})
	require.NoError(t, err)
	assert.Equal(t, executortest.Reply{N: 8}, v)
	assert.Equal(t, uint64(7), w.Stats().Ran)
}
