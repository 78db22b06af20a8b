package flow_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// flaky is "load" -> "flaky" -> "report"; flaky fails while fail is set.
// Each task counts its runs per run id, and flaky notes when it last ran.
type flaky struct {
	f       *flow.Flow
	fail    atomic.Bool
	runs    counter // "task run-id"
	mu      sync.Mutex
	lastRan time.Time
}

func newFlaky(t *testing.T, name string) *flaky {
	fl := &flaky{}
	count := func(ctx context.Context, name string) {
		id, _ := task.Info(ctx)
		fl.runs.add(name + " " + id.RunID)
	}
	load := task.New("load", func(ctx context.Context, _ struct{}) (int, error) {
		count(ctx, "load")
		return 20, nil
	}, task.Options{})
	fail := task.New("flaky", func(ctx context.Context, n int) (int, error) {
		count(ctx, "flaky")
		fl.mu.Lock()
		fl.lastRan = time.Now()
		fl.mu.Unlock()
		if fl.fail.Load() {
			return 0, errors.New("flaky: down")
		}
		return n + 1, nil
	}, task.Options{})
	report := task.New("report", func(ctx context.Context, n int) (int, error) {
		count(ctx, "report")
		return 2 * n, nil
	}, task.Options{})
	b := flow.New(name, flow.Options{})
	flow.Add(b, report, flow.Add(b, fail, flow.Add(b, load, flow.Const(struct{}{}))))
	f, err := b.Build()
	require.NoError(t, err)
	fl.f = f
	return fl
}

// failedRuns runs fl's flow n times with flaky failing: n Failed runs,
// "<prefix>0" ... in the store.
func (fl *flaky) failedRuns(t *testing.T, st store.Store, ex executor.TimeoutHandler, prefix string, n int) []string {
	t.Helper()
	fl.fail.Store(true)
	defer fl.fail.Store(false)
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i)
		res, err := fl.f.Run(context.Background(), ex, flow.RunOptions{Store: st, RunID: id})
		require.Error(t, err)
		require.Equal(t, task.Failed, res.State)
		ids = append(ids, id)
	}
	return ids
}

// TestServePerformsARetryAtItsNextLook: Serve looks at once and then every
// PollInterval; a retry requested 0.5 s in is performed at 1 s, exactly,
// re-running only the failed task and what follows it; an expired run is
// resumed at the first look.
func TestServePerformsARetryAtItsNextLook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
		fl := newFlaky(t, "flaky")
		ex := newPool(t, 2)
		fl.failedRuns(t, st, ex, "r", 1)
		require.NoError(t, st.CreateRun(ctx, store.Run{ID: "orphan", Flow: "flaky", FlowHash: fl.f.Hash(),
			Params: []byte(`{}`), Owner: "dead", LeaseExpires: time.Now().Add(-time.Second), Created: time.Now()}))

		results := make(chan *flow.Result, 4)
		served := make(chan error, 1)
		start := time.Now()
		go func() {
			served <- flow.Serve(ctx, ex, []*flow.Flow{fl.f}, flow.ServeOptions{RunOptions: flow.RunOptions{Store: st},
				OnResult: func(res *flow.Result, err error) { results <- res }})
		}()
		orphan := <-results
		require.NotNil(t, orphan)
		assert.Equal(t, "orphan", orphan.RunID)
		assert.Equal(t, task.Success, orphan.State, "the expired run is resumed at the first look")
		assert.Equal(t, time.Duration(0), time.Since(start))

		time.Sleep(500 * time.Millisecond)
		require.NoError(t, st.RequestRetry(ctx, "r0"))
		rec, err := st.Run(ctx, "r0")
		require.NoError(t, err)
		assert.False(t, rec.RetryRequested.IsZero())
		res := <-results
		require.NotNil(t, res)
		assert.Equal(t, "r0", res.RunID)
		assert.Equal(t, task.Success, res.State, "the retry succeeded")
		fl.mu.Lock()
		assert.Equal(t, time.Second, fl.lastRan.Sub(start), "performed at the look after the request")
		fl.mu.Unlock()
		assert.Equal(t, 1, fl.runs.get("load r0/load"), "load succeeded before: not run again")
		assert.Equal(t, 2, fl.runs.get("flaky r0/flaky"), "failed once, retried once")
		assert.Equal(t, 1, fl.runs.get("report r0/report"), "never ran before; ran once")

		rec, err = st.Run(ctx, "r0")
		require.NoError(t, err)
		assert.Equal(t, "Success", rec.State)
		assert.True(t, rec.RetryRequested.IsZero(), "the request is consumed")
		time.Sleep(5 * time.Second)
		assert.Equal(t, 2, fl.runs.get("flaky r0/flaky"), "and performed once")
		cancel()
		assert.ErrorIs(t, <-served, context.Canceled)
		assert.Empty(t, results)
	})
}

// TestServeHandsItsRunsOverWhenStopped: when ctx ends, the runs Serve
// drives stop without their end recorded and with their leases released;
// Serve returns after they stopped; the next Serve resumes them at its
// first look, and the task runs that were in flight run again there.
func TestServeHandsItsRunsOverWhenStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
		bf := newBlockingFlow(t, "blocking")
		ex := newPool(t, 2)
		require.NoError(t, st.CreateRun(context.Background(), store.Run{ID: "orphan", Flow: "blocking", FlowHash: bf.f.Hash(),
			Params: []byte(`{}`), Owner: "dead", LeaseExpires: time.Now().Add(-time.Second), Created: time.Now()}))
		serve := func(ctx context.Context, owner string, got chan<- *flow.Result) error {
			return flow.Serve(ctx, ex, []*flow.Flow{bf.f}, flow.ServeOptions{
				RunOptions: flow.RunOptions{Store: st, Owner: owner},
				OnResult: func(res *flow.Result, err error) {
					if assert.NotNil(t, res, "%v", err) {
						got <- res
					}
				}})
		}
		ctx, stop := context.WithCancel(context.Background())
		first := make(chan *flow.Result, 1)
		served := make(chan error, 1)
		go func() { served <- serve(ctx, "first", first) }()
		time.Sleep(3 * time.Second)
		assert.Equal(t, int32(1), bf.waits.Load(), "resumed once, not again at every look")
		stop()
		require.ErrorIs(t, <-served, context.Canceled)
		require.Len(t, first, 1, "OnResult was called before Serve returned")
		res := <-first
		assert.Equal(t, task.Cancelled, res.State)
		assert.ErrorIs(t, res.Err, flow.ErrHandedOver)
		assert.ErrorIs(t, res.Err, context.Canceled)

		rec, err := st.Run(context.Background(), "orphan")
		require.NoError(t, err)
		assert.False(t, rec.Finished(), "the end of a handed-over run is not recorded")
		assert.Equal(t, "Running", rec.State)
		assert.Equal(t, "", rec.Owner, "its lease is released: the next Serve may take it at once")
		trs, err := st.TaskRuns(context.Background(), "orphan")
		require.NoError(t, err)
		states := map[string]string{}
		for _, tr := range trs {
			states[tr.Label] = tr.State
		}
		assert.Equal(t, "Success", states["prep"], "what was durable before stays")
		assert.NotEqual(t, "Cancelled", states["wait"], "the task run in flight is not recorded as cancelled")

		ctx, stop = context.WithCancel(context.Background())
		defer stop()
		second := make(chan *flow.Result, 1)
		go func() { served <- serve(ctx, "second", second) }()
		synctest.Wait()
		assert.Equal(t, int32(2), bf.waits.Load(), "the next Serve resumed it at its first look; wait runs again")
		rec, err = st.Run(context.Background(), "orphan")
		require.NoError(t, err)
		assert.Equal(t, "second", rec.Owner)
		require.NoError(t, st.RequestCancel(context.Background(), "orphan"))
		res = <-second
		assert.Equal(t, task.Cancelled, res.State)
		assert.ErrorIs(t, res.Err, flow.ErrCancelRequested)
		rec, err = st.Run(context.Background(), "orphan")
		require.NoError(t, err)
		assert.Equal(t, "Cancelled", rec.State, "a run cancelled by request is recorded so")
		stop()
		require.ErrorIs(t, <-served, context.Canceled)
		assert.NoError(t, st.RequestRetry(context.Background(), "orphan"), "and can be retried")
	})
}

// TestServeGivesUpOnAChangedFlow: a run recorded with another version of
// the flow is reported once and left alone, with its request pending.
func TestServeGivesUpOnAChangedFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
		fl := newFlaky(t, "flaky")
		require.NoError(t, st.CreateRun(ctx, store.Run{ID: "old", Flow: "flaky", FlowHash: "another-hash",
			Params: []byte(`{}`), Created: time.Now()}))
		require.NoError(t, st.Apply(ctx, &store.Batch{RunID: "old", Run: &store.RunUpdate{State: "Failed", Ended: time.Now()}}))
		require.NoError(t, st.RequestRetry(ctx, "old"))
		var errs []error
		served := make(chan error, 1)
		go func() {
			served <- flow.Serve(ctx, newPool(t, 2), []*flow.Flow{fl.f}, flow.ServeOptions{RunOptions: flow.RunOptions{Store: st},
				PollInterval: 100 * time.Millisecond, OnResult: func(res *flow.Result, err error) {
					assert.Nil(t, res)
					errs = append(errs, err)
				}})
		}()
		time.Sleep(time.Second)
		cancel()
		require.ErrorIs(t, <-served, context.Canceled)
		require.Len(t, errs, 1, "reported once, not at every look")
		assert.ErrorIs(t, errs[0], store.ErrFlowChanged)
		rec, err := st.Run(context.Background(), "old")
		require.NoError(t, err)
		assert.False(t, rec.RetryRequested.IsZero(), "the request stays for a process with the right flow")
		assert.Equal(t, "", rec.Owner, "the lease Serve took to look is given back")
	})
}

func TestServeRefusesTwoFlowsWithOneName(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
	a, b := newFlaky(t, "same"), newFlaky(t, "same")
	err := flow.Serve(context.Background(), newPool(t, 1), []*flow.Flow{a.f, b.f}, flow.ServeOptions{RunOptions: flow.RunOptions{Store: st}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `two flows named "same"`)
}

// TestServeTwoServersPerformEachRetryOnce: two Serves with their own
// owners race on one store, on the real clock, under -race: each retry
// request is performed exactly once, and each expired run resumed once.
func TestServeTwoServersPerformEachRetryOnce(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
	testTwoServers(t, st)
}

func testTwoServers(t *testing.T, st store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fl := newFlaky(t, "flaky")
	ex := newPool(t, 4)
	ids := fl.failedRuns(t, st, ex, "r", 8)
	for i := range 4 {
		id := fmt.Sprintf("orphan%d", i)
		require.NoError(t, st.CreateRun(ctx, store.Run{ID: id, Flow: "flaky", FlowHash: fl.f.Hash(),
			Params: []byte(`{}`), Owner: "dead", LeaseExpires: time.Now().Add(-time.Second), Created: time.Now()}))
	}
	for _, id := range ids {
		require.NoError(t, st.RequestRetry(ctx, id))
	}
	var wg sync.WaitGroup
	sctx, stop := context.WithCancel(ctx)
	var performed [2]atomic.Int32
	// server1 takes leases late: what it listed may have been performed
	// by server0 meanwhile, the race a Serve must see through.
	stores := []store.Store{st, lagging{Store: st, lag: 40 * time.Millisecond}}
	for i := range 2 {
		wg.Go(func() {
			err := flow.Serve(sctx, ex, []*flow.Flow{fl.f}, flow.ServeOptions{
				RunOptions:   flow.RunOptions{Store: stores[i], Owner: fmt.Sprintf("server%d", i), LeaseTTL: 2 * time.Second},
				PollInterval: 5 * time.Millisecond,
				OnResult: func(res *flow.Result, err error) {
					if assert.NotNil(t, res, "%v", err) {
						assert.Equal(t, task.Success, res.State)
					}
					performed[i].Add(1)
				}})
			assert.ErrorIs(t, err, context.Canceled)
		})
	}
	require.Eventually(t, func() bool {
		rs, err := st.Runs(ctx, store.RunFilter{States: []string{"Success"}})
		return err == nil && len(rs) == 12
	}, 30*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // twenty more looks each: nothing more to do
	stop()
	wg.Wait()
	assert.Equal(t, int32(12), performed[0].Load()+performed[1].Load(), "12 runs driven in all (server0 %d, server1 %d)",
		performed[0].Load(), performed[1].Load())
	for _, id := range ids {
		assert.Equal(t, 2, fl.runs.get("flaky "+id+"/flaky"), "run %s: failed once, retried once", id)
		assert.Equal(t, 1, fl.runs.get("report "+id+"/report"), "run %s", id)
		assert.Equal(t, 1, fl.runs.get("load "+id+"/load"), "run %s", id)
	}
	for i := range 4 {
		id := fmt.Sprintf("orphan%d", i)
		assert.Equal(t, 1, fl.runs.get("flaky "+id+"/flaky"), "run %s resumed once", id)
	}
	rs, err := st.Runs(ctx, store.RunFilter{RetryRequested: true})
	require.NoError(t, err)
	assert.Empty(t, rs, "every request consumed")
}

// lagging is a store whose Acquire waits lag first, as a store far away
// would.
type lagging struct {
	store.Store
	lag time.Duration
}

func (l lagging) Acquire(ctx context.Context, id, owner string, ttl time.Duration) (store.Lease, error) {
	time.Sleep(l.lag)
	return l.Store.Acquire(ctx, id, owner, ttl)
}
