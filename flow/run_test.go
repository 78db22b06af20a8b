package flow_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/flow/flowtest"
	"github.com/flowline-go/flowline/task"
)

var errBoom = errors.New("boom")

// outcomeTask returns a task of no input that succeeds, fails with
// errBoom, or skips.
func outcomeTask(name, outcome string) *task.Task[struct{}, string] {
	return task.New(name, func(ctx context.Context, _ struct{}) (string, error) {
		switch outcome {
		case "fail":
			return "", errBoom
		case "skip":
			return "", task.Skip("nothing to do")
		}
		return name, nil
	}, task.Options{})
}

// recorder counts calls per task name.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
}

func (r *recorder) task(name string, opts task.Options) *task.Task[struct{}, string] {
	return task.New(name, func(ctx context.Context, _ struct{}) (string, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.calls == nil {
			r.calls = map[string]int{}
		}
		r.calls[name]++
		return name, nil
	}, opts)
}

func (r *recorder) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[name]
}

func states(res *flow.Result) map[string]task.State {
	m := map[string]task.State{}
	for _, t := range res.Tasks {
		m[t.Task] = t.State
	}
	return m
}

func TestTriggers(t *testing.T) {
	tests := []struct {
		trigger task.Trigger
		ups     []string // outcomes of the upstream tasks
		runs    bool
	}{
		{task.AllSuccessful, []string{"ok", "ok"}, true},
		{task.AllSuccessful, []string{"ok", "fail"}, false},
		{task.AllFinished, []string{"fail", "fail"}, true},
		{task.AllFinished, []string{"ok", "fail"}, true},
		{task.AllFailed, []string{"fail", "fail"}, true},
		{task.AllFailed, []string{"ok", "fail"}, false},
		{task.AnySuccessful, []string{"fail", "ok"}, true},
		{task.AnySuccessful, []string{"fail", "fail"}, false},
		{task.AnyFailed, []string{"ok", "fail"}, true},
		{task.AnyFailed, []string{"ok", "ok"}, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%s", tt.trigger, strings.Join(tt.ups, ",")), func(t *testing.T) {
			var rec recorder
			b := flow.New("triggers", flow.Options{})
			var ups []flow.AnyNode
			for i, o := range tt.ups {
				ups = append(ups, flow.Add(b, outcomeTask(fmt.Sprintf("up%d", i), o), nil))
			}
			down := flow.Add(b, rec.task("down", task.Options{Trigger: tt.trigger}), nil).After(ups...)
			f, err := b.Build()
			require.NoError(t, err)

			res, _ := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
			tr, ok := res.Task(down.Name())
			require.True(t, ok)
			if tt.runs {
				assert.Equal(t, 1, rec.count("down"))
				assert.Equal(t, task.Success, tr.State)
				assert.Equal(t, task.Success, res.State, "down is the only reference task")
				assert.NoError(t, res.Err)
				return
			}
			assert.Equal(t, 0, rec.count("down"), "a refused task never runs")
			assert.Equal(t, task.TriggerFailed, tr.State)
			assert.Empty(t, tr.Attempts)
			var te *flow.TriggerError
			require.ErrorAs(t, tr.Err, &te)
			assert.ErrorIs(t, tr.Err, flow.ErrTriggerFailed)
			assert.Equal(t, tt.trigger, te.Trigger)
			assert.Len(t, te.Upstream, len(tt.ups))
			assert.Equal(t, task.Failed, res.State)
			assert.Error(t, res.Err)
		})
	}
}

func TestFailedUpstreamStopsItsDependents(t *testing.T) {
	var rec recorder
	b := flow.New("fail", flow.Options{})
	bad := flow.Add(b, outcomeTask("bad", "fail"), nil)
	mid := flow.Add(b, rec.task("mid", task.Options{}), nil).After(bad)
	flow.Add(b, rec.task("end", task.Options{}), nil).After(mid)
	flow.Add(b, rec.task("cleanup", task.Options{Trigger: task.AllFinished}), nil).After(mid)
	flow.Add(b, rec.task("unrelated", task.Options{}), nil)
	f, err := b.Build()
	require.NoError(t, err)

	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	assert.Equal(t, map[string]task.State{
		"bad": task.Failed, "mid": task.TriggerFailed, "end": task.TriggerFailed,
		"cleanup": task.Success, "unrelated": task.Success,
	}, states(res))
	assert.Equal(t, 0, rec.count("mid")+rec.count("end"))
	assert.Equal(t, 1, rec.count("cleanup"))
	assert.Equal(t, task.Failed, res.State, "end, a reference task, failed")
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, res.Err, err)
	var te *flow.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "bad", te.Task)
	assert.NotErrorIs(t, err, flow.ErrTriggerFailed, "the flow's error names the root cause, not its consequences")
}

func TestSkips(t *testing.T) {
	var rec recorder
	b := flow.New("skips", flow.Options{})
	skip := flow.Add(b, outcomeTask("skip", "skip"), nil)
	a := flow.Add(b, rec.task("a", task.Options{}), nil).After(skip)
	flow.Add(b, rec.task("b", task.Options{}), nil).After(a) // skipped in turn
	flow.Add(b, rec.task("runs-anyway", task.Options{RunOnUpstreamSkip: true}), nil).After(skip)
	ok := flow.Add(b, outcomeTask("ok", "ok"), nil)
	// A skip counts as a success for triggers once it does not propagate.
	flow.Add(b, rec.task("all-successful", task.Options{RunOnUpstreamSkip: true}), nil).After(skip, ok)
	flow.Add(b, rec.task("all-failed", task.Options{RunOnUpstreamSkip: true, Trigger: task.AllFailed}), nil).After(skip)
	f, err := b.Build()
	require.NoError(t, err)

	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	assert.Equal(t, map[string]task.State{
		"skip": task.Skipped, "a": task.Skipped, "b": task.Skipped, "runs-anyway": task.Success,
		"ok": task.Success, "all-successful": task.Success, "all-failed": task.TriggerFailed,
	}, states(res))
	assert.Equal(t, 0, rec.count("a")+rec.count("b")+rec.count("all-failed"))
	tr, _ := res.Task("b")
	assert.ErrorIs(t, tr.Err, task.ErrSkip)
	assert.ErrorContains(t, tr.Err, `upstream "a" was skipped`)
	assert.Equal(t, task.Failed, res.State)
	assert.Error(t, err)
}

func TestAllReferenceTasksSkippedSkipsTheFlow(t *testing.T) {
	b := flow.New("skipped", flow.Options{})
	s := flow.Add(b, outcomeTask("s", "skip"), nil)
	flow.Add(b, outcomeTask("t", "ok"), nil).After(s)
	f, err := b.Build()
	require.NoError(t, err)
	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	assert.NoError(t, err)
	assert.Equal(t, task.Skipped, res.State)
}

func TestReferenceTasks(t *testing.T) {
	build := func(refs bool) *flow.Flow {
		b := flow.New("refs", flow.Options{})
		load := flow.Add(b, outcomeTask("load", "ok"), nil)
		flow.Add(b, outcomeTask("notify", "fail"), nil).After(load) // terminal, and fails
		if refs {
			b.Reference(load)
		}
		f, err := b.Build()
		require.NoError(t, err)
		return f
	}
	res, err := build(false).Run(context.Background(), newLocal(t), flow.RunOptions{})
	assert.Equal(t, task.Failed, res.State, "by default the terminal task notify decides")
	assert.ErrorIs(t, err, errBoom)

	res, err = build(true).Run(context.Background(), newLocal(t), flow.RunOptions{})
	assert.Equal(t, task.Success, res.State, "load is the reference task")
	assert.NoError(t, err)
	tr, _ := res.Task("notify")
	assert.Equal(t, task.Failed, tr.State, "a non-reference failure is still recorded")
}

func TestReferenceTriggerFailedExplainsTheFlowState(t *testing.T) {
	b := flow.New("cleanup", flow.Options{})
	work := flow.Add(b, outcomeTask("work", "ok"), nil)
	flow.Add(b, outcomeTask("on-failure", "ok"), nil).After(work)
	f, err := b.Build()
	require.NoError(t, err)
	_ = f
	b2 := flow.New("cleanup", flow.Options{})
	work = flow.Add(b2, outcomeTask("work", "ok"), nil)
	onFailure := task.New("on-failure", func(ctx context.Context, _ struct{}) (int, error) { return 0, nil },
		task.Options{Trigger: task.AnyFailed})
	flow.Add(b2, onFailure, nil).After(work)
	f, err = b2.Build()
	require.NoError(t, err)
	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	assert.Equal(t, task.Failed, res.State, "a terminal AnyFailed task that refuses fails the flow, as in Prefect: set reference tasks")
	assert.ErrorIs(t, err, flow.ErrTriggerFailed, "with no failure to name, the error names the refused reference task")
}

func TestParameters(t *testing.T) {
	var calls atomic.Int32
	greet := task.New("greet", func(ctx context.Context, in string) (string, error) {
		calls.Add(1)
		return in, nil
	}, task.Options{})
	b := flow.New("params", flow.Options{})
	name := flow.Param[string](b, "name")
	times := flow.ParamOr(b, "times", 2)
	out := flow.Add(b, greet, flow.Combine2(name, times, func(n string, k int) string {
		return strings.Repeat("hi "+n+" ", k)
	}))
	f, err := b.Build()
	require.NoError(t, err)

	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{Args: []flow.Arg{name.Set("ann")}})
	require.NoError(t, err)
	v, _ := flow.Value(res, out)
	assert.Equal(t, "hi ann hi ann ", v, "the default applies")

	res, err = f.Run(context.Background(), newLocal(t), flow.RunOptions{Args: []flow.Arg{times.Set(1), name.Set("bo")}})
	require.NoError(t, err)
	v, _ = flow.Value(res, out)
	assert.Equal(t, "hi bo ", v)
	calls.Store(0)

	other := flow.Param[string](flow.New("other", flow.Options{}), "name")
	late := flow.Param[int](b, "late") // added after Build: not in f
	tests := []struct {
		name string
		args []flow.Arg
		want error
		text string
	}{
		{"missing required", nil, flow.ErrMissingParam, `flow "params": missing parameter "name"`},
		{"another flow's", []flow.Arg{name.Set("a"), other.Set("x")}, flow.ErrUnknownParam, `unknown parameter "name"`},
		{"added after Build", []flow.Arg{name.Set("a"), late.Set(1)}, flow.ErrUnknownParam, `unknown parameter "late"`},
		{"zero Arg", []flow.Arg{name.Set("a"), {}}, flow.ErrUnknownParam, `unknown parameter ""`},
		{"set twice", []flow.Arg{name.Set("a"), name.Set("b")}, flow.ErrDuplicateArg, `parameter set twice "name"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{Args: tt.args})
			assert.Nil(t, res)
			require.ErrorIs(t, err, tt.want)
			var pe *flow.ParamError
			require.ErrorAs(t, err, &pe)
			assert.ErrorContains(t, err, tt.text)
			assert.Zero(t, calls.Load(), "no task runs with bad parameters")
		})
	}
}

func TestCombinators(t *testing.T) {
	type order struct {
		Items []string
		Rate  float64
		Note  string
	}
	price := task.New("price", func(ctx context.Context, o order) (string, error) {
		return fmt.Sprintf("%d items at %.1f (%s)", len(o.Items), o.Rate, o.Note), nil
	}, task.Options{})
	list := task.New("list", func(ctx context.Context, n int) ([]string, error) {
		return slices.Repeat([]string{"x"}, n), nil
	}, task.Options{})
	sum := task.New("sum", func(ctx context.Context, ns []int) (int, error) {
		t := 0
		for _, n := range ns {
			t += n
		}
		return t, nil
	}, task.Options{})

	b := flow.New("combine", flow.Options{})
	rate := flow.ParamOr(b, "rate", 1.5)
	items := flow.Add(b, list, flow.Const(3))
	priced := flow.Add(b, price, flow.Combine3(items, rate, flow.Const("note"),
		func(i []string, r float64, n string) order { return order{i, r, n} }))
	one := flow.Add(b, intTask("one", 1, task.Options{}), flow.Const(0))
	two := flow.Add(b, intTask("two", 2, task.Options{}), flow.Const(0))
	total := flow.Add(b, sum, flow.Collect[int](one, two, flow.Convert(items, func(s []string) int { return len(s) })))
	none := flow.Add(b, sum, flow.Collect[int]()).Named("none")
	f, err := b.Build()
	require.NoError(t, err)

	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	require.NoError(t, err)
	p, _ := flow.Value(res, priced)
	assert.Equal(t, "3 items at 1.5 (note)", p)
	n, _ := flow.Value(res, total)
	assert.Equal(t, 6, n)
	z, ok := flow.Value(res, none)
	assert.True(t, ok)
	assert.Zero(t, z)
}

func TestPanicBuildingAnInputFailsWithoutRetries(t *testing.T) {
	var calls atomic.Int32
	tk := task.New("t", func(ctx context.Context, n int) (int, error) { calls.Add(1); return n, nil },
		task.Options{MaxRetries: 3})
	b := flow.New("panic", flow.Options{})
	flow.Add(b, tk, flow.Convert(flow.Const(0), func(int) int { panic("bad wiring") }))
	f, err := b.Build()
	require.NoError(t, err)
	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	require.ErrorIs(t, err, executor.ErrBadInput)
	assert.ErrorContains(t, err, "building the input panicked: bad wiring")
	tr, _ := res.Task("t")
	assert.Equal(t, task.Failed, tr.State)
	assert.Empty(t, tr.Attempts, "the task never ran: no attempt is recorded")
	assert.Zero(t, calls.Load())
}

func TestRetriesAndBackoffInAFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		flaky := task.New("flaky", func(ctx context.Context, n int) (int, error) {
			if calls.Add(1) < 3 {
				return 0, errBoom
			}
			return n * 2, nil
		}, task.Options{MaxRetries: 3, RetryDelay: time.Second, RetryJitter: -1})
		b := flow.New("retry", flow.Options{})
		x := flow.Add(b, flaky, flow.Const(21))
		y := flow.Add(b, intTask("after", 1, task.Options{}), x)
		f, err := b.Build()
		require.NoError(t, err)

		for _, ex := range []executor.TimeoutHandler{newLocal(t), newTestPool(t, 2, 4)} {
			calls.Store(0)
			start := time.Now()
			res, err := f.Run(context.Background(), ex, flow.RunOptions{})
			require.NoError(t, err)
			assert.Equal(t, 3*time.Second, time.Since(start), "backoff 1s then 2s, on timers")
			v, _ := flow.Value(res, y)
			assert.Equal(t, 43, v)
			tr, _ := res.Task("flaky")
			require.Len(t, tr.Attempts, 3)
			assert.ErrorIs(t, tr.Attempts[0].Err, errBoom)
			assert.Equal(t, time.Second, tr.Attempts[1].Start.Sub(tr.Attempts[0].End))
		}
	})
}

func TestFlowTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		sleep := task.New("sleep", func(ctx context.Context, d time.Duration) (int, error) {
			select {
			case <-time.After(d):
				return 1, nil
			case <-ctx.Done():
				return 0, context.Cause(ctx)
			}
		}, task.Options{})
		flaky := task.New("flaky", func(ctx context.Context, _ struct{}) (int, error) { return 0, errBoom },
			task.Options{MaxRetries: 5, RetryDelay: time.Hour})

		b := flow.New("limited", flow.Options{Timeout: time.Minute})
		fast := flow.Add(b, sleep, flow.Const(time.Second)).Named("fast")
		slow := flow.Add(b, sleep, flow.Const(slowly)).Named("slow").After(fast)
		flow.Add(b, rec.task("after-slow", task.Options{}), nil).After(slow)
		flow.Add(b, flaky, nil) // waiting an hour to retry when the limit fires
		flow.Map(b, intTask("mapped", 1, task.Options{}), flow.Convert(slow, func(n int) []int { return []int{n} }))
		f, err := b.Build()
		require.NoError(t, err)

		for _, ex := range []executor.TimeoutHandler{newLocal(t), newTestPool(t, 2, 1)} {
			start := time.Now()
			res, err := f.Run(context.Background(), ex, flow.RunOptions{})
			assert.Equal(t, time.Minute, time.Since(start), "Run returns at the flow's limit")
			assert.Equal(t, task.TimedOut, res.State)
			require.ErrorIs(t, err, flow.ErrTimeout)
			assert.NotErrorIs(t, err, executor.ErrTimeout)
			var te *flow.TimeoutError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, time.Minute, te.Limit)
			assert.Equal(t, map[string]task.State{
				"fast": task.Success, "slow": task.Cancelled, "after-slow": task.Cancelled,
				"flaky": task.Cancelled, "mapped": task.Cancelled,
			}, states(res))
			tr, _ := res.Task("slow")
			assert.ErrorIs(t, tr.Err, context.DeadlineExceeded)
			tr, _ = res.Task("flaky")
			assert.Len(t, tr.Attempts, 1, "the retry timer was stopped")
			assert.Equal(t, 0, rec.count("after-slow"))
		}
	})
}

func TestCancelStopsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		block := task.New("block", func(ctx context.Context, _ struct{}) (int, error) {
			close(started)
			<-ctx.Done()
			return 0, ctx.Err()
		}, task.Options{})
		var rec recorder
		b := flow.New("cancel", flow.Options{})
		blk := flow.Add(b, block, nil)
		flow.Add(b, rec.task("after", task.Options{}), nil).After(blk)
		f, err := b.Build()
		require.NoError(t, err)

		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-started
			time.Sleep(time.Second)
			cancel()
		}()
		res, err := f.Run(ctx, newTestPool(t, 2, 2), flow.RunOptions{})
		assert.Equal(t, task.Cancelled, res.State)
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, flow.ErrTimeout)
		assert.Equal(t, map[string]task.State{"block": task.Cancelled, "after": task.Cancelled}, states(res))
		assert.Equal(t, 0, rec.count("after"))

		// A context that has ended before Run: nothing runs.
		res, err = f.Run(ctx, newLocal(t), flow.RunOptions{})
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, map[string]task.State{"block": task.Cancelled, "after": task.Cancelled}, states(res))
	})
}

func TestStopOnAnyExecutor(t *testing.T) {
	// The helper the hard executors' tests call (see flowtest.CheckStop),
	// run here on soft executors.
	flowtest.CheckStop(t, newLocal(t), flowtest.Options{Limit: 50 * time.Millisecond})
	flowtest.CheckStop(t, newTestPool(t, 4, 4), flowtest.Options{Limit: 50 * time.Millisecond})
	flowtest.CheckStop(t, newPool(t, 4), flowtest.Options{Limit: 50 * time.Millisecond})
}

// TestNoLevelBarrier proves that a task starts as soon as its own upstream
// tasks are final: a chain a1 -> a2 -> a3 finishes while its sibling
// "slow", a root like a1, is still running, and slow only returns once a3
// has run. A scheduler that waited for a whole level would wait for slow
// before starting a2 and never finish.
func TestNoLevelBarrier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, ex := range []executor.TimeoutHandler{newTestPool(t, 2, 2), newPool(t, 2)} {
			a3done := make(chan struct{})
			slow := task.New("slow", func(ctx context.Context, _ struct{}) (string, error) {
				select {
				case <-a3done:
					return "after a3", nil
				case <-time.After(slowly):
					return "", errors.New("a3 never ran while slow was running")
				}
			}, task.Options{})
			step := func(name string) *task.Task[int, int] {
				return task.New(name, func(ctx context.Context, n int) (int, error) {
					if name == "a3" {
						close(a3done)
					}
					return n + 1, nil
				}, task.Options{})
			}
			b := flow.New("barrier", flow.Options{})
			s := flow.Add(b, slow, nil)
			a1 := flow.Add(b, step("a1"), flow.Const(0))
			a2 := flow.Add(b, step("a2"), a1)
			a3 := flow.Add(b, step("a3"), a2)
			flow.Add(b, step("join"), flow.Combine2(s, a3, func(_ string, n int) int { return n }))
			f, err := b.Build()
			require.NoError(t, err)

			start := time.Now()
			res, err := f.Run(context.Background(), ex, flow.RunOptions{})
			require.NoError(t, err)
			assert.Zero(t, time.Since(start))
			v, _ := flow.Value(res, s)
			assert.Equal(t, "after a3", v)
		}
	})
}

func TestConcurrentRunsOfOneFlow(t *testing.T) {
	double := task.New("double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil }, task.Options{})
	b := flow.New("concurrent", flow.Options{})
	n := flow.Param[int](b, "n")
	list := flow.Add(b, task.New("list", func(ctx context.Context, n int) ([]int, error) {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}, task.Options{}), n)
	doubled := flow.Map(b, double, list)
	sum := flow.Add(b, task.New("sum", func(ctx context.Context, ns []int) (int, error) {
		t := 0
		for _, n := range ns {
			t += n
		}
		return t, nil
	}, task.Options{}), doubled)
	f, err := b.Build()
	require.NoError(t, err)

	testPool, pool := newTestPool(t, 4, 8), newPool(t, 3)
	var wg sync.WaitGroup
	for k := range 24 {
		wg.Go(func() {
			ex := []executor.TimeoutHandler{newLocal(t), testPool, pool}[k%3]
			res, err := f.Run(context.Background(), ex, flow.RunOptions{Args: []flow.Arg{n.Set(k)}})
			if !assert.NoError(t, err) {
				return
			}
			v, _ := flow.Value(res, sum)
			assert.Equal(t, k*(k-1), v, "run %d", k)
			assert.Len(t, res.Tasks, 3+k)
		})
	}
	wg.Wait()
}

func TestOnStateRunsOnTheLoop(t *testing.T) {
	var changes []string // not synchronised: -race checks that one goroutine appends
	b := flow.New("hooks", flow.Options{})
	list := flow.Add(b, task.New("list", func(ctx context.Context, _ struct{}) ([]int, error) { return []int{1, 2}, nil },
		task.Options{}), nil)
	m := flow.Map(b, intTask("inc", 1, task.Options{}), list)
	flow.Add(b, outcomeTask("skipped", "skip"), nil).After(m)
	f, err := b.Build()
	require.NoError(t, err)

	_, err = f.Run(context.Background(), newTestPool(t, 2, 2), flow.RunOptions{
		RunID: "r",
		OnState: func(c task.Change) {
			changes = append(changes, fmt.Sprintf("%s %s %v->%v", c.RunID, c.Task, c.From, c.To))
		},
	})
	require.NoError(t, err)
	// The children run concurrently: compare per task.
	byTask := map[string][]string{}
	for _, c := range changes {
		task := strings.Fields(c)[1]
		byTask[task] = append(byTask[task], c)
	}
	assert.Equal(t, map[string][]string{
		"list":    {"r/list list Pending->Running", "r/list list Running->Success"},
		"inc":     {"r/inc inc Pending->Running", "r/inc inc Running->Success"},
		"inc[0]":  {"r/inc[0] inc[0] Pending->Running", "r/inc[0] inc[0] Running->Success"},
		"inc[1]":  {"r/inc[1] inc[1] Pending->Running", "r/inc[1] inc[1] Running->Success"},
		"skipped": {"r/skipped skipped Pending->Running", "r/skipped skipped Running->Skipped"},
	}, byTask)
	assert.Equal(t, "r/list list Pending->Running", changes[0])
	assert.Equal(t, "r/skipped skipped Running->Skipped", changes[len(changes)-1])
}

func TestLargeFlowRunsEveryTaskOnce(t *testing.T) {
	const layers, width = 20, 200
	var calls atomic.Int64
	tk := task.New("t", func(ctx context.Context, _ struct{}) (struct{}, error) {
		calls.Add(1)
		return struct{}{}, nil
	}, task.Options{})
	b := flow.New("large", flow.Options{})
	var prev []*flow.Node[struct{}]
	for l := range layers {
		var cur []*flow.Node[struct{}]
		for w := range width {
			n := flow.Add(b, tk, nil).Named(fmt.Sprintf("t%d.%d", l, w))
			if prev != nil {
				n.After(prev[w], prev[(w+1)%width])
			}
			cur = append(cur, n)
		}
		prev = cur
	}
	f, err := b.Build()
	require.NoError(t, err)
	for _, ex := range []executor.TimeoutHandler{newLocal(t), newTestPool(t, 2, 64)} {
		calls.Store(0)
		res, err := f.Run(context.Background(), ex, flow.RunOptions{})
		require.NoError(t, err)
		assert.Equal(t, int64(layers*width), calls.Load())
		assert.Len(t, res.Tasks, layers*width)
	}
}

func TestClosedExecutor(t *testing.T) {
	var rec recorder
	b := flow.New("closed", flow.Options{})
	first := flow.Add(b, rec.task("first", task.Options{MaxRetries: 3}), nil)
	flow.Add(b, rec.task("second", task.Options{}), nil).After(first)
	f, err := b.Build()
	require.NoError(t, err)
	ex := newLocal(t)
	require.NoError(t, ex.Shutdown(context.Background()))

	res, err := f.Run(context.Background(), ex, flow.RunOptions{})
	require.ErrorIs(t, err, executor.ErrClosed)
	assert.Equal(t, map[string]task.State{"first": task.Failed, "second": task.TriggerFailed}, states(res))
	tr, _ := res.Task("first")
	assert.Len(t, tr.Attempts, 1, "a closed executor is not retried")
	assert.Zero(t, rec.count("first")+rec.count("second"))
}
