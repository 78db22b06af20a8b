package flow_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// counter counts executions per label (a side effect outside the store).
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(label string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[label]++
}

func (c *counter) get(label string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[label]
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, n := range c.n {
		t += n
	}
	return t
}

// pipeline is first -> map square -> sum, counting executions.
type pipeline struct {
	f      *flow.Flow
	sum    *flow.Node[int]
	square *flow.Node[[]int]
	n      *flow.Parameter[int]
	runs   counter
	// fail, when set, fails square on this input
	fail atomic.Int64
	// before, when set, runs in sum before it returns
	before func(ctx context.Context)
}

func newPipeline(t *testing.T, name string) *pipeline {
	p := &pipeline{}
	p.fail.Store(-1)
	first := task.New("first", func(_ context.Context, n int) ([]int, error) {
		p.runs.add("first")
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}, task.Options{})
	square := task.New("square", func(_ context.Context, x int) (int, error) {
		p.runs.add(fmt.Sprintf("square[%d]", x))
		if int64(x) == p.fail.Load() {
			return 0, fmt.Errorf("square %d: boom", x)
		}
		return x * x, nil
	}, task.Options{})
	sum := task.New("sum", func(ctx context.Context, xs []int) (int, error) {
		p.runs.add("sum")
		if p.before != nil {
			p.before(ctx)
		}
		t := 0
		for _, x := range xs {
			t += x
		}
		return t, nil
	}, task.Options{})
	b := flow.New(name, flow.Options{})
	p.n = flow.Param[int](b, "n")
	p.square = flow.Map(b, square, flow.Add(b, first, p.n))
	p.sum = flow.Add(b, sum, p.square)
	f, err := b.Build()
	require.NoError(t, err)
	p.f = f
	return p
}

func TestDurableRunRecordsEveryTaskRun(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
	p := newPipeline(t, "squares")
	ex := newPool(t, 4)
	ctx := context.Background()
	res, err := p.f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: "run-1", Args: []flow.Arg{p.n.Set(4)}})
	require.NoError(t, err)
	v, ok := flow.Value(res, p.sum)
	require.True(t, ok)
	assert.Equal(t, 0+1+4+9, v)

	run, err := st.Run(ctx, "run-1")
	require.NoError(t, err)
	assert.Equal(t, "squares", run.Flow)
	assert.Equal(t, p.f.Hash(), run.FlowHash)
	assert.JSONEq(t, `{"n":4}`, string(run.Params))
	assert.Equal(t, "Success", run.State)
	assert.True(t, run.Finished())
	assert.Equal(t, "", run.Owner, "the lease is given up at the end")

	trs, err := st.TaskRuns(ctx, "run-1")
	require.NoError(t, err)
	got := map[string]store.TaskRun{}
	for _, tr := range trs {
		got[tr.Label] = tr
	}
	require.Len(t, got, 7, "first, square, 4 children, sum")
	assert.Equal(t, "Success", got["sum"].State)
	assert.Equal(t, []byte(`14`), got["sum"].Value)
	assert.Equal(t, []byte(`9`), got["square[3]"].Value)
	assert.Equal(t, []byte(`[0,1,2,3]`), got["first"].Value)
	assert.Equal(t, 1, got["square[2]"].Attempts)

	as, err := st.Attempts(ctx, "run-1")
	require.NoError(t, err)
	assert.Len(t, as, 6, "one attempt per task that ran")
	for _, a := range as {
		assert.Equal(t, "Success", a.State, a.Label)
		assert.False(t, a.End.Before(a.Start), a.Label)
	}

	chs, err := st.Changes(ctx, "run-1")
	require.NoError(t, err)
	var sumChanges []string
	for k, c := range chs {
		if k > 0 {
			assert.Greater(t, c.Seq, chs[k-1].Seq)
		}
		if c.Label == "sum" {
			sumChanges = append(sumChanges, c.From+">"+c.To)
		}
	}
	assert.Equal(t, []string{"Pending>Running", "Running>Success"}, sumChanges)
}

// TestResultIsDurableBeforeDownstreamStarts checks the write-ahead rule
// from inside the downstream task, through a second handle on the file
// (as another process would read it).
func TestResultIsDurableBeforeDownstreamStarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	st, reader := openStore(t, path), openStore(t, path)
	p := newPipeline(t, "squares")
	var seen []store.TaskRun
	var readErr error
	p.before = func(ctx context.Context) { seen, readErr = reader.TaskRuns(ctx, "wa") }
	_, err := p.f.Run(context.Background(), newPool(t, 4), flow.RunOptions{Store: st, RunID: "wa", Args: []flow.Arg{p.n.Set(5)}})
	require.NoError(t, err)
	require.NoError(t, readErr)
	done := map[string]string{}
	for _, tr := range seen {
		done[tr.Label] = tr.State
	}
	for k := range 5 {
		assert.Equal(t, "Success", done[fmt.Sprintf("square[%d]", k)], "square[%d] must be durable before sum starts", k)
	}
	assert.Equal(t, "Success", done["first"])
}

// failing is a store whose writes start failing once fail is set: the
// process "dies" for the store, and nothing more is recorded.
type failing struct {
	*sqlite.Store
	fail    atomic.Bool
	failOn  string // fail every batch with a final record of this label
	applied atomic.Int64
}

var errDown = errors.New("store went away")

func (s *failing) Apply(ctx context.Context, b *store.Batch) error {
	for _, tr := range b.TaskRuns {
		if tr.Label == s.failOn && tr.State != "Running" {
			s.fail.Store(true)
		}
	}
	if s.fail.Load() {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, errDown)
	}
	s.applied.Add(1)
	return s.Store.Apply(ctx, b)
}

// TestResumeRunsOnlyWhatWasNotRecorded interrupts a run where sum's
// result cannot be recorded (as if the process died then), and resumes it
// with another store handle: first and the squares are not run again,
// sum gets attempt 2.
func TestResumeRunsOnlyWhatWasNotRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	broken := &failing{Store: openStore(t, path), failOn: "sum"}
	p := newPipeline(t, "squares")
	ex := newPool(t, 4)
	ctx := context.Background()
	// sum waits until its attempt's start is durable, so the record shows
	// it in flight.
	reader := openStore(t, path)
	p.before = func(ctx context.Context) {
		for {
			as, err := reader.Attempts(ctx, "r")
			if err == nil && len(as) > 0 && func() bool {
				for _, a := range as {
					if a.Label == "sum" {
						return true
					}
				}
				return false
			}() {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	res, err := p.f.Run(ctx, ex, flow.RunOptions{Store: broken, RunID: "r", Args: []flow.Arg{p.n.Set(3)}})
	var se *flow.StoreError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, store.ErrUnavailable)
	assert.Equal(t, task.Failed, res.State)
	rec, err := reader.Run(ctx, "r")
	require.NoError(t, err)
	assert.False(t, rec.Finished(), "a run stopped by its store is not recorded as ended")
	require.Equal(t, 1, p.runs.get("sum"))

	p.before = nil
	res, err = p.f.Resume(ctx, ex, "r", flow.RunOptions{Store: reader})
	require.NoError(t, err)
	v, ok := flow.Value(res, p.sum)
	require.True(t, ok)
	assert.Equal(t, 5, v)
	assert.Equal(t, 1, p.runs.get("first"), "recorded: not run again")
	for k := range 3 {
		assert.Equal(t, 1, p.runs.get(fmt.Sprintf("square[%d]", k)), "recorded: not run again")
	}
	assert.Equal(t, 2, p.runs.get("sum"), "in flight: run again")
	tr, ok := res.Task("sum")
	require.True(t, ok)
	require.Len(t, tr.Attempts, 2, "the lost attempt is kept")
	assert.Equal(t, []int{1, 2}, []int{tr.Attempts[0].N, tr.Attempts[1].N}, "attempt numbers continue")
	sq, ok := res.Task("square[2]")
	require.True(t, ok)
	assert.Equal(t, task.Success, sq.State)
	assert.Equal(t, 4, sq.Value)
	rec, err = reader.Run(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, "Success", rec.State)

	// Idempotent: the id of an ended run gives its result, running nothing.
	before := p.runs.total()
	res, err = p.f.Run(ctx, ex, flow.RunOptions{Store: reader, RunID: "r"})
	require.NoError(t, err)
	v, ok = flow.Value(res, p.sum)
	require.True(t, ok)
	assert.Equal(t, 5, v)
	assert.Equal(t, task.Success, res.State)
	assert.Equal(t, before, p.runs.total(), "nothing runs for an ended run")
	_, err = p.f.Run(ctx, ex, flow.RunOptions{Store: reader, RunID: "r", Args: []flow.Arg{p.n.Set(4)}})
	assert.ErrorIs(t, err, flow.ErrParamsChanged)
}

func TestResumeRefusesAChangedFlow(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
	p := newPipeline(t, "squares")
	ctx := context.Background()
	_, err := p.f.Run(ctx, newPool(t, 2), flow.RunOptions{Store: st, RunID: "r", Args: []flow.Arg{p.n.Set(2)}})
	require.NoError(t, err)

	other := task.New("other", func(_ context.Context, n int) (int, error) { return n, nil }, task.Options{})
	b := flow.New("squares", flow.Options{})
	flow.Add(b, other, flow.Param[int](b, "n"))
	changed, err := b.Build()
	require.NoError(t, err)
	assert.NotEqual(t, p.f.Hash(), changed.Hash())
	assert.Equal(t, p.f.Hash(), newPipeline(t, "squares").f.Hash(), "the hash is structural: the same build gives the same hash")
	_, err = changed.Resume(ctx, newPool(t, 2), "r", flow.RunOptions{Store: st})
	var fc *store.FlowChangedError
	require.ErrorAs(t, err, &fc)
	assert.ErrorIs(t, err, store.ErrFlowChanged)
	assert.Equal(t, p.f.Hash(), fc.RecordedHash)
	_, err = p.f.Resume(ctx, newPool(t, 2), "nope", flow.RunOptions{Store: st})
	assert.ErrorIs(t, err, store.ErrNotFound)
}

func TestRestartRerunsOnlyFailures(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
	p := newPipeline(t, "squares")
	p.fail.Store(2)
	ex := newPool(t, 4)
	ctx := context.Background()
	res, err := p.f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: "r", Args: []flow.Arg{p.n.Set(4)}})
	require.Error(t, err)
	assert.Equal(t, task.Failed, res.State)
	_, err = p.f.Resume(ctx, ex, "r", flow.RunOptions{Store: st})
	require.Error(t, err, "resuming an ended run gives its recorded result")
	_, err = p.f.Restart(ctx, ex, "nope", flow.RunOptions{Store: st})
	require.ErrorIs(t, err, store.ErrNotFound)

	p.fail.Store(-1)
	res, err = p.f.Restart(ctx, ex, "r", flow.RunOptions{Store: st})
	require.NoError(t, err)
	v, ok := flow.Value(res, p.sum)
	require.True(t, ok)
	assert.Equal(t, 0+1+4+9, v)
	assert.Equal(t, 1, p.runs.get("first"))
	for _, k := range []int{0, 1, 3} {
		assert.Equal(t, 1, p.runs.get(fmt.Sprintf("square[%d]", k)), "successful: kept")
	}
	assert.Equal(t, 2, p.runs.get("square[2]"), "failed: run again")
	assert.Equal(t, 1, p.runs.get("sum"), "never ran (TriggerFailed): runs now")
	tr, ok := res.Task("square[2]")
	require.True(t, ok)
	require.Len(t, tr.Attempts, 2)
	assert.Equal(t, 2, tr.Attempts[1].N, "attempt numbers continue")
	rec, err := st.Run(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, "Success", rec.State)
	_, err = p.f.Restart(ctx, ex, "r", flow.RunOptions{Store: st})
	assert.ErrorIs(t, err, flow.ErrNotRestartable, "a successful run is not restarted")
}

func TestLeaseKeepsASecondDriverOut(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
	p := newPipeline(t, "squares")
	ctx := context.Background()
	release := make(chan struct{})
	started := make(chan struct{})
	p.before = func(context.Context) { close(started); <-release }
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() {
		_, firstErr = p.f.Run(ctx, newPool(t, 2), flow.RunOptions{Store: st, RunID: "r", Owner: "one",
			Args: []flow.Arg{p.n.Set(2)}, LeaseTTL: time.Hour})
	})
	<-started
	_, err := p.f.Resume(ctx, newPool(t, 2), "r", flow.RunOptions{Store: st, Owner: "two"})
	var le *store.LeaseError
	assert.ErrorAs(t, err, &le)
	if le != nil {
		assert.Equal(t, "one", le.Holder)
	}
	results, err := flow.ResumeExpired(ctx, newPool(t, 2), []*flow.Flow{p.f}, flow.RunOptions{Store: st, Owner: "two"})
	assert.NoError(t, err)
	assert.Empty(t, results, "a live lease is not expired")
	close(release)
	wg.Wait()
	require.NoError(t, firstErr)
}

func TestResumeExpiredPicksUpAbandonedRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	st := openStore(t, path)
	p := newPipeline(t, "squares")
	ctx := context.Background()
	broken := &failing{Store: openStore(t, path), failOn: "sum"}
	_, err := p.f.Run(ctx, newPool(t, 2), flow.RunOptions{Store: broken, RunID: "a", Args: []flow.Arg{p.n.Set(3)}})
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = p.f.Run(ctx, newPool(t, 2), flow.RunOptions{Store: st, RunID: "done", Args: []flow.Arg{p.n.Set(1)}})
	require.NoError(t, err)
	results, err := flow.ResumeExpired(ctx, newPool(t, 2), []*flow.Flow{p.f}, flow.RunOptions{Store: st})
	require.NoError(t, err)
	require.Len(t, results, 1, "only the unfinished run")
	assert.Equal(t, "a", results[0].RunID)
	v, ok := flow.Value(results[0], p.sum)
	require.True(t, ok)
	assert.Equal(t, 5, v)
}

func TestUndecodableRecordedResultIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	broken := &failing{Store: openStore(t, path), failOn: "sum"}
	p := newPipeline(t, "squares")
	ctx := context.Background()
	_, err := p.f.Run(ctx, newPool(t, 2), flow.RunOptions{Store: broken, RunID: "r", Args: []flow.Arg{p.n.Set(2)}})
	require.ErrorIs(t, err, store.ErrUnavailable)
	st := openStore(t, path)
	require.NoError(t, st.Apply(ctx, &store.Batch{RunID: "r",
		TaskRuns: []store.TaskRun{{Label: "square[1]", State: "Success", Value: []byte(`"not an int"`)}}}))
	before := p.runs.total()
	_, err = p.f.Resume(ctx, newPool(t, 2), "r", flow.RunOptions{Store: st})
	var ce *store.CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, ce.What, "square[1]")
	assert.Equal(t, before, p.runs.total(), "nothing runs")
	rec, err := st.Run(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, "", rec.Owner, "the refused resume gives its lease back")
}

func TestUnencodableParameterIsRefused(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
	id := task.New("id", func(_ context.Context, c chan int) (int, error) { return 0, nil }, task.Options{})
	b := flow.New("chans", flow.Options{})
	flow.Add(b, id, flow.ParamOr(b, "c", make(chan int)))
	f, err := b.Build()
	require.NoError(t, err)
	_, err = f.Run(context.Background(), newPool(t, 1), flow.RunOptions{Store: st, Args: []flow.Arg{}})
	var pe *flow.ParamError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, pe.Error(), "JSON")
	runs, err := st.Runs(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	assert.Empty(t, runs, "nothing recorded")
}

// cached is a flow of one mapped, cached task.
func cachedFlow(t *testing.T, runs *counter, gate <-chan struct{}) (*flow.Flow, *flow.Parameter[[]int], *flow.Node[[]int]) {
	slow := task.New("slow", func(_ context.Context, x int) (int, error) {
		runs.add(fmt.Sprint(x))
		if gate != nil {
			<-gate
		}
		return 10 * x, nil
	}, task.Options{CacheFor: time.Hour, CacheVersion: "v1"})
	b := flow.New("cached", flow.Options{})
	xs := flow.Param[[]int](b, "xs")
	out := flow.Map(b, slow, xs)
	f, err := b.Build()
	require.NoError(t, err)
	return f, xs, out
}

func TestCacheHitEndsCachedWithoutRunning(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
	var runs counter
	f, xs, out := cachedFlow(t, &runs, nil)
	ctx := context.Background()
	ex := newPool(t, 2)
	res, err := f.Run(ctx, ex, flow.RunOptions{Store: st, Args: []flow.Arg{xs.Set([]int{1, 2})}})
	require.NoError(t, err)
	v, _ := flow.Value(res, out)
	assert.Equal(t, []int{10, 20}, v)

	res, err = f.Run(ctx, ex, flow.RunOptions{Store: st, Args: []flow.Arg{xs.Set([]int{2, 3})}})
	require.NoError(t, err)
	v, ok := flow.Value(res, out)
	require.True(t, ok)
	assert.Equal(t, []int{20, 30}, v)
	assert.Equal(t, 1, runs.get("2"), "2 came from the cache")
	assert.Equal(t, 1, runs.get("3"))
	hit, ok := res.Task("slow[0]")
	require.True(t, ok)
	assert.Equal(t, task.Cached, hit.State)
	assert.Empty(t, hit.Attempts, "no executor call")
	miss, _ := res.Task("slow[1]")
	assert.Equal(t, task.Success, miss.State)

	entries, err := st.CacheEntries(ctx, "slow/v1/")
	require.NoError(t, err)
	assert.Len(t, entries, 3)
	trs, err := st.TaskRuns(ctx, res.RunID)
	require.NoError(t, err)
	for _, tr := range trs {
		if tr.Label == "slow[0]" {
			assert.Equal(t, "Cached", tr.State)
			assert.NotEmpty(t, tr.CacheKey)
		}
	}

	n, err := st.Invalidate(ctx, "slow/")
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	_, err = f.Run(ctx, ex, flow.RunOptions{Store: st, Args: []flow.Arg{xs.Set([]int{2})}})
	require.NoError(t, err)
	assert.Equal(t, 2, runs.get("2"), "invalidated: runs again")
}

// TestConcurrentRunsWithOneKeyRunItOnce runs two flows at once, through two
// store handles (as two processes), on one key: the task runs once.
func TestConcurrentRunsWithOneKeyRunItOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	a, b := openStore(t, path), openStore(t, path)
	var runs counter
	gate := make(chan struct{})
	f, xs, out := cachedFlow(t, &runs, gate)
	ctx := context.Background()
	results := make([]*flow.Result, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, st := range []store.Store{a, b} {
		wg.Go(func() {
			results[i], errs[i] = f.Run(ctx, newPool(t, 2), flow.RunOptions{Store: st, Args: []flow.Arg{xs.Set([]int{7})}})
		})
	}
	require.Eventually(t, func() bool { return runs.get("7") == 1 }, 10*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the other run is waiting on the claim, not running the task
	close(gate)
	wg.Wait()
	for i := range 2 {
		require.NoError(t, errs[i])
		v, ok := flow.Value(results[i], out)
		require.True(t, ok)
		assert.Equal(t, []int{70}, v)
	}
	assert.Equal(t, 1, runs.get("7"), "one key, one execution")
	states := []task.State{}
	for _, r := range results {
		tr, _ := r.Task("slow[0]")
		states = append(states, tr.State)
	}
	assert.ElementsMatch(t, []task.State{task.Success, task.Cached}, states)
}

// TestLostLeaseStopsTheRun takes the run's lease away behind its back (as
// an operator or a second owner after a long stall would): the next
// heartbeat finds it held, the run stops with a *flow.StoreError, and
// nothing downstream runs.
func TestLostLeaseStopsTheRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	st := openStore(t, path)
	p := newPipeline(t, "squares")
	ctx := context.Background()
	started := make(chan struct{})
	p.before = func(ctx context.Context) {
		close(started)
		<-ctx.Done() // sum runs until the run is stopped
	}
	done := make(chan struct{})
	var res *flow.Result
	var err error
	go func() {
		defer close(done)
		res, err = p.f.Run(ctx, newPool(t, 2), flow.RunOptions{Store: st, RunID: "r", Owner: "me",
			LeaseTTL: 150 * time.Millisecond, Args: []flow.Arg{p.n.Set(2)}})
	}()
	<-started
	_, serr := st.SQL().Exec(`UPDATE flowline_runs SET owner = 'thief', lease_expires = ? WHERE id = 'r'`,
		time.Now().Add(time.Hour).UnixNano())
	require.NoError(t, serr)
	<-done
	var se *flow.StoreError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, store.ErrLeaseHeld)
	assert.Equal(t, task.Failed, res.State)
	rec, rerr := st.Run(ctx, "r")
	require.NoError(t, rerr)
	assert.Equal(t, "thief", rec.Owner, "the loser neither ends the run nor frees the thief's lease")
	assert.False(t, rec.Finished())
}
