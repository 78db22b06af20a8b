package flow_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

func TestMain(m *testing.M) {
	serveIfWorker() // subprocess_*_test.go: Linux only
	crashChild()    // crash_test.go: a child process of the crash trials
	collectChild()  // collect_test.go: a cluster submitter that is killed
	serveChild()    // serve_process_test.go: a service process running flow.Serve
	auditChild()    // limits_audit_test.go: a process of the limits audit
	goleak.VerifyTestMain(m)
}

// intTask returns a task that adds add to its input.
func intTask(name string, add int, opts task.Options) *task.Task[int, int] {
	return task.New(name, func(ctx context.Context, n int) (int, error) { return n + add, nil }, opts)
}

// buildErrors returns Build's errors as *BuildErrors.
func buildErrors(t *testing.T, err error) []*flow.BuildError {
	t.Helper()
	require.Error(t, err)
	var out []*flow.BuildError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var be *flow.BuildError
		require.ErrorAs(t, e, &be)
		out = append(out, be)
	}
	return out
}

func TestBuildRejectsCycle(t *testing.T) {
	b := flow.New("loop", flow.Options{})
	a := flow.Add(b, intTask("a", 1, task.Options{}), flow.Const(0))
	c := flow.Add(b, intTask("b", 1, task.Options{}), a)
	d := flow.Add(b, intTask("c", 1, task.Options{}), c)
	a.After(d) // a -> b -> c -> a
	flow.Add(b, intTask("d", 1, task.Options{}), d)

	f, err := b.Build()
	assert.Nil(t, f)
	require.ErrorIs(t, err, flow.ErrCycle)
	errs := buildErrors(t, err)
	require.Len(t, errs, 1)
	assert.Equal(t, []string{"a", "b", "c", "a"}, errs[0].Tasks)
	assert.Equal(t, `flow "loop": cycle: "a" -> "b" -> "c" -> "a"`, errs[0].Error())
}

func TestBuildRejectsSelfLoop(t *testing.T) {
	b := flow.New("self", flow.Options{})
	a := flow.Add(b, intTask("a", 1, task.Options{}), nil)
	a.After(a)
	_, err := b.Build()
	require.ErrorIs(t, err, flow.ErrCycle)
	assert.Equal(t, []string{"a", "a"}, buildErrors(t, err)[0].Tasks)
}

func TestBuildRejectsDuplicateNames(t *testing.T) {
	b := flow.New("dup", flow.Options{})
	inc := intTask("inc", 1, task.Options{})
	first := flow.Add(b, inc, flow.Const(1))
	flow.Add(b, inc, first) // the same task twice, not renamed
	flow.Param[int](b, "n")
	flow.Add(b, intTask("n", 1, task.Options{}), nil) // a node named like a parameter

	_, err := b.Build()
	require.ErrorIs(t, err, flow.ErrDuplicateName)
	var names []string
	for _, e := range buildErrors(t, err) {
		names = append(names, e.Tasks...)
	}
	assert.ElementsMatch(t, []string{"inc", "n"}, names)
	assert.ErrorContains(t, err, `"inc" names 2 nodes and parameters; rename with Named`)

	// Renaming fixes it.
	b2 := flow.New("dup", flow.Options{})
	first = flow.Add(b2, inc, flow.Const(1))
	flow.Add(b2, inc, first).Named("inc again")
	_, err = b2.Build()
	assert.NoError(t, err)
}

func TestBuildRejectsNilTask(t *testing.T) {
	b := flow.New("nil", flow.Options{})
	var missing *task.Task[int, int]
	n := flow.Add(b, missing, flow.Const(1))
	flow.Map(b, (*task.Task[int, int])(nil), flow.Const([]int{1})).Named("mapped")
	flow.Add(b, intTask("after", 1, task.Options{}), n)

	_, err := b.Build()
	require.ErrorIs(t, err, flow.ErrNilTask)
	errs := buildErrors(t, err)
	require.Len(t, errs, 2)
	assert.ErrorContains(t, errs[0], "node #0 (nil task) has a nil task")
	assert.ErrorContains(t, errs[1], `node "mapped" has a nil task`)
}

func TestBuildRejectsMissingUpstream(t *testing.T) {
	other := flow.New("other", flow.Options{})
	foreign := flow.Add(other, intTask("foreign", 1, task.Options{}), nil)
	foreignParam := flow.Param[int](other, "p")

	b := flow.New("main", flow.Options{})
	var nilNode *flow.Node[int]
	flow.Add(b, intTask("reads-foreign", 1, task.Options{}), foreign)
	flow.Add(b, intTask("reads-foreign-param", 1, task.Options{}), foreignParam)
	flow.Add(b, intTask("reads-nil", 1, task.Options{}), nilNode)
	flow.Add(b, intTask("waits-foreign", 1, task.Options{}), nil).After(foreign)
	flow.Add(b, intTask("waits-nil", 1, task.Options{}), nil).After(nil, nilNode)
	flow.Add(b, intTask("combines-foreign", 1, task.Options{}),
		flow.Combine2(flow.Const(1), foreign, func(a, b int) int { return a + b }))
	b.Reference(foreign)

	_, err := b.Build()
	require.ErrorIs(t, err, flow.ErrMissingUpstream)
	errs := buildErrors(t, err)
	var first []string
	for _, e := range errs {
		assert.ErrorIs(t, e, flow.ErrMissingUpstream)
		if len(e.Tasks) > 0 {
			first = append(first, e.Tasks[0])
		}
	}
	assert.Equal(t, []string{"reads-foreign", "reads-foreign-param", "reads-nil", "waits-foreign",
		"waits-nil", "waits-nil", "combines-foreign", "foreign"}, first)
	assert.ErrorContains(t, err, `node "reads-foreign" reads node "foreign" of another flow ("other")`)
	assert.ErrorContains(t, err, `node "reads-foreign-param" reads parameter "p" of another flow ("other")`)
	assert.ErrorContains(t, err, `reference node "foreign" belongs to another flow ("other")`)
}

func TestBuildRejectsOutcomesOfUnmappedNode(t *testing.T) {
	b := flow.New("outcomes", flow.Options{})
	list := flow.Add(b, task.New("list", func(ctx context.Context, _ struct{}) ([]int, error) { return nil, nil },
		task.Options{}), nil)
	flow.Add(b, task.New("sum", func(ctx context.Context, o []flow.Outcome[int]) (int, error) { return 0, nil },
		task.Options{}), flow.Outcomes(list))
	_, err := b.Build()
	require.ErrorIs(t, err, flow.ErrNotMapped)
	assert.Equal(t, []string{"sum", "list"}, buildErrors(t, err)[0].Tasks)
}

func TestBuildReportsEveryProblem(t *testing.T) {
	b := flow.New("many", flow.Options{})
	var nilTask *task.Task[int, int]
	flow.Add(b, nilTask, nil)
	a := flow.Add(b, intTask("a", 1, task.Options{}), nil)
	flow.Add(b, intTask("a", 1, task.Options{}), nil)
	a.After(a)
	_, err := b.Build()
	for _, want := range []error{flow.ErrNilTask, flow.ErrDuplicateName, flow.ErrCycle} {
		assert.ErrorIs(t, err, want)
	}
}

func TestBuildIsASnapshot(t *testing.T) {
	b := flow.New("grow", flow.Options{})
	a := flow.Add(b, intTask("a", 1, task.Options{}), flow.Const(1))
	f1, err := b.Build()
	require.NoError(t, err)

	c := flow.Add(b, intTask("c", 10, task.Options{}), a)
	a.After(c) // a cycle, but only in the builder from now on
	_, err = b.Build()
	require.ErrorIs(t, err, flow.ErrCycle)

	res, err := f1.Run(context.Background(), newLocal(t), flow.RunOptions{})
	require.NoError(t, err)
	assert.Equal(t, 1, f1.Len())
	require.Len(t, res.Tasks, 1)
	v, ok := flow.Value(res, a)
	assert.True(t, ok)
	assert.Equal(t, 2, v)
	_, ok = flow.Value(res, c)
	assert.False(t, ok, "a node added after Build is not in the flow")
}

func TestBuildPanicsOnProgrammingErrors(t *testing.T) {
	assert.PanicsWithValue(t, "flow: New with an empty name", func() { flow.New("", flow.Options{}) })
	b := flow.New("p", flow.Options{})
	assert.PanicsWithValue(t, "flow: Param with an empty name", func() { flow.Param[int](b, "") })
	n := flow.Add(b, intTask("a", 1, task.Options{}), nil)
	assert.PanicsWithValue(t, "flow: Named with an empty name", func() { n.Named("") })
	assert.PanicsWithValue(t, "flow: Add or Map with a nil Builder", func() { flow.Add(nil, intTask("x", 1, task.Options{}), nil) })
	assert.Panics(t, func() { flow.Combine2[int, int, int](n, n, nil) })
	f, err := b.Build()
	require.NoError(t, err)
	assert.PanicsWithValue(t, "flow: Run with a nil executor", func() { _, _ = f.Run(context.Background(), nil, flow.RunOptions{}) })
}

func TestErrorsHaveTheirSentinels(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{&flow.BuildError{Err: flow.ErrCycle}, flow.ErrCycle},
		{&flow.ParamError{Err: flow.ErrMissingParam}, flow.ErrMissingParam},
		{&flow.TimeoutError{}, flow.ErrTimeout},
		{&flow.TimeoutError{}, context.DeadlineExceeded},
		{&flow.TriggerError{}, flow.ErrTriggerFailed},
		{&flow.TaskError{Err: errors.New("x")}, nil},
	}
	for _, tt := range tests {
		if tt.want != nil {
			assert.ErrorIs(t, tt.err, tt.want, "%T", tt.err)
		}
		assert.NotErrorIs(t, tt.err, executor.ErrTimeout, "%T: only a task's own limit is executor.ErrTimeout", tt.err)
	}
	assert.Equal(t, executor.ClassCanceled, executor.ClassOf(&flow.TimeoutError{}),
		"to the tasks it stops, a flow's limit is a cancellation")
}
