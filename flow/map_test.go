package flow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

func words(s string) []string { return strings.Fields(s) }

var split = task.New("split", func(ctx context.Context, s string) ([]string, error) { return words(s), nil }, task.Options{})

func TestMapKeepsInputOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Later elements finish first: the result is still in input order.
		slowFirst := task.New("upper", func(ctx context.Context, s string) (string, error) {
			time.Sleep(time.Duration(10-len(s)) * time.Second)
			return strings.ToUpper(s), nil
		}, task.Options{})
		b := flow.New("order", flow.Options{})
		text := flow.Param[string](b, "text")
		ws := flow.Add(b, split, text)
		up := flow.Map(b, slowFirst, ws)
		f, err := b.Build()
		require.NoError(t, err)

		res, err := f.Run(context.Background(), newTestPool(t, 8, 8), flow.RunOptions{Args: []flow.Arg{text.Set("a bb ccc dddd")}})
		require.NoError(t, err)
		v, ok := flow.Value(res, up)
		require.True(t, ok)
		assert.Equal(t, []string{"A", "BB", "CCC", "DDDD"}, v)
		var labels []string
		for _, tr := range res.Tasks {
			labels = append(labels, tr.Task)
		}
		assert.Equal(t, []string{"split", "upper", "upper[0]", "upper[1]", "upper[2]", "upper[3]"}, labels)
		tr, ok := res.Task("upper[2]")
		require.True(t, ok)
		assert.Equal(t, "CCC", tr.Value)
		assert.Equal(t, 2, tr.Index)
		assert.Equal(t, "upper", tr.Node())
		assert.Equal(t, 7*time.Second, tr.Duration())
		parent, _ := res.Task("upper")
		assert.True(t, parent.Mapped)
		assert.Equal(t, 4, parent.Children)
		assert.Equal(t, 9*time.Second, parent.Duration(), "the slowest child, running concurrently")
		for _, bad := range []string{"upper[4]", "upper[-1]", "upper[02]", "upper[x]", "nope[0]", "upper["} {
			_, ok := res.Task(bad)
			assert.False(t, ok, bad)
		}
	})
}

func TestMapEmpty(t *testing.T) {
	var calls atomic.Int32
	count := task.New("count", func(ctx context.Context, s []string) (int, error) {
		calls.Add(1)
		return len(s), nil
	}, task.Options{})
	b := flow.New("empty", flow.Options{})
	ws := flow.Add(b, split, flow.Const(""))
	up := flow.Map(b, task.New("upper", func(ctx context.Context, s string) (string, error) { return s, nil }, task.Options{}), ws)
	n := flow.Add(b, count, up)
	f, err := b.Build()
	require.NoError(t, err)

	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	require.NoError(t, err)
	v, ok := flow.Value(res, up)
	assert.True(t, ok)
	assert.NotNil(t, v)
	assert.Empty(t, v)
	c, _ := flow.Value(res, n)
	assert.Zero(t, c)
	assert.Equal(t, int32(1), calls.Load(), "the downstream task runs on the empty result")
	assert.Len(t, res.Tasks, 3)
	tr, _ := res.Task("upper")
	assert.Equal(t, task.Success, tr.State)
	assert.Zero(t, tr.Children)
}

func TestMapNested(t *testing.T) {
	// Map over a mapped node's result, then map again over each child's
	// own slice result.
	b := flow.New("nested", flow.Options{})
	ws := flow.Add(b, split, flow.Const("go flow run"))
	up := flow.Map(b, task.New("upper", func(ctx context.Context, s string) (string, error) { return strings.ToUpper(s), nil }, task.Options{}), ws)
	letters := flow.Map(b, task.New("letters", func(ctx context.Context, s string) ([]string, error) { return strings.Split(s, ""), nil }, task.Options{}), up)
	counts := flow.Map(b, task.New("count", func(ctx context.Context, ls []string) (int, error) { return len(ls), nil }, task.Options{}), letters)
	f, err := b.Build()
	require.NoError(t, err)

	res, err := f.Run(context.Background(), newTestPool(t, 3, 3), flow.RunOptions{})
	require.NoError(t, err)
	l, _ := flow.Value(res, letters)
	assert.Equal(t, [][]string{{"G", "O"}, {"F", "L", "O", "W"}, {"R", "U", "N"}}, l)
	c, _ := flow.Value(res, counts)
	assert.Equal(t, []int{2, 4, 3}, c)
	tr, ok := res.Task("count[1]")
	require.True(t, ok)
	assert.Equal(t, 4, tr.Value)
}

func TestMapWithSharedValue(t *testing.T) {
	type in struct {
		Word   string
		Prefix string
	}
	tag := task.New("tag", func(ctx context.Context, i in) (string, error) { return i.Prefix + i.Word, nil }, task.Options{})
	b := flow.New("mapwith", flow.Options{})
	prefix := flow.ParamOr(b, "prefix", "#")
	ws := flow.Add(b, split, flow.Const("a b"))
	tags := flow.MapWith(b, tag, ws, prefix, func(w string, p string) in { return in{w, p} })
	f, err := b.Build()
	require.NoError(t, err)
	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{Args: []flow.Arg{prefix.Set("@")}})
	require.NoError(t, err)
	v, _ := flow.Value(res, tags)
	assert.Equal(t, []string{"@a", "@b"}, v)
}

func TestMapFailedChild(t *testing.T) {
	var attempts atomic.Int32
	parse := task.New("parse", func(ctx context.Context, s string) (int, error) {
		if s == "x" {
			attempts.Add(1)
			return 0, fmt.Errorf("parse %q: %w", s, errBoom)
		}
		return len(s), nil
	}, task.Options{MaxRetries: 2})
	sum := task.New("sum", func(ctx context.Context, ns []int) (int, error) {
		t := 0
		for _, n := range ns {
			t += n
		}
		return t, nil
	}, task.Options{})
	report := task.New("report", func(ctx context.Context, os []flow.Outcome[int]) (string, error) {
		var parts []string
		for _, o := range os {
			parts = append(parts, fmt.Sprintf("%d:%v", o.Value, o.State))
		}
		return strings.Join(parts, " "), nil
	}, task.Options{Trigger: task.AllFinished})
	partial := task.New("partial", func(ctx context.Context, ns []int) ([]int, error) { return ns, nil },
		task.Options{Trigger: task.AllFinished})

	b := flow.New("failed-child", flow.Options{})
	ws := flow.Add(b, split, flow.Const("aa x bbb"))
	parsed := flow.Map(b, parse, ws)
	total := flow.Add(b, sum, parsed)
	rep := flow.Add(b, report, flow.Outcomes(parsed))
	part := flow.Add(b, partial, parsed)
	f, err := b.Build()
	require.NoError(t, err)

	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	assert.Equal(t, map[string]task.State{
		"split": task.Success, "parse": task.Failed, "parse[0]": task.Success, "parse[1]": task.Failed,
		"parse[2]": task.Success, "sum": task.TriggerFailed, "report": task.Success, "partial": task.Success,
	}, states(res))
	assert.Equal(t, int32(3), attempts.Load(), "the failed child has its own retries")
	child, _ := res.Task("parse[1]")
	assert.Len(t, child.Attempts, 3)
	parent, _ := res.Task("parse")
	assert.ErrorIs(t, parent.Err, errBoom)
	assert.ErrorContains(t, parent.Err, `1 of 3 children of "parse" failed`)
	_, ok := flow.Value(res, total)
	assert.False(t, ok)
	r, _ := flow.Value(res, rep)
	assert.Equal(t, "2:Success 0:Failed 3:Success", r)
	p, _ := flow.Value(res, part)
	assert.Equal(t, []int{2, 0, 3}, p, "the zero value stands for the failed child")

	require.ErrorIs(t, err, errBoom)
	var te *flow.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "parse[1]", te.Task, "the flow's error names the child")
	assert.Len(t, err.(interface{ Unwrap() []error }).Unwrap(), 1, "and not its parent again")
}

func TestMapChildrenHaveTheirOwnLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		nap := task.New("nap", func(ctx context.Context, d time.Duration) (time.Duration, error) {
			calls.Add(1)
			select {
			case <-time.After(d):
				return d, nil
			case <-ctx.Done():
				return 0, context.Cause(ctx)
			}
		}, task.Options{Timeout: 5 * time.Second})
		b := flow.New("limits", flow.Options{})
		flow.Map(b, nap, flow.Const([]time.Duration{time.Second, time.Minute, 2 * time.Second}))
		f, err := b.Build()
		require.NoError(t, err)
		res, err := f.Run(context.Background(), newTestPool(t, 3, 3), flow.RunOptions{})
		require.ErrorIs(t, err, executor.ErrTimeout)
		assert.Equal(t, map[string]task.State{
			"nap": task.Failed, "nap[0]": task.Success, "nap[1]": task.TimedOut, "nap[2]": task.Success,
		}, states(res))
		v, _ := res.Task("nap")
		assert.Equal(t, []time.Duration{time.Second, 0, 2 * time.Second}, v.Value)
	})
}

func TestMapSkippedChildren(t *testing.T) {
	keep := task.New("keep", func(ctx context.Context, s string) (string, error) {
		if strings.HasPrefix(s, "-") {
			return "", task.Skip("filtered")
		}
		return s, nil
	}, task.Options{})
	build := func(text string) (*flow.Flow, *flow.Node[[]string]) {
		b := flow.New("skip", flow.Options{})
		kept := flow.Map(b, keep, flow.Add(b, split, flow.Const(text)))
		f, err := b.Build()
		require.NoError(t, err)
		return f, kept
	}
	f, kept := build("a -b c")
	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	require.NoError(t, err)
	assert.Equal(t, task.Success, res.State)
	v, _ := flow.Value(res, kept)
	assert.Equal(t, []string{"a", "", "c"}, v)

	f, _ = build("-a -b")
	res, err = f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	require.NoError(t, err)
	tr, _ := res.Task("keep")
	assert.Equal(t, task.Skipped, tr.State, "all children skipped")
	assert.ErrorIs(t, tr.Err, task.ErrSkip)
}

func TestMapInputPanic(t *testing.T) {
	b := flow.New("panics", flow.Options{})
	type in struct{ N int }
	inc := task.New("inc", func(ctx context.Context, i in) (int, error) { return i.N + 1, nil }, task.Options{MaxRetries: 2})
	flow.MapWith(b, inc, flow.Const([]int{1, 0, 2}), flow.Const(10), func(e, d int) in { return in{d / e} })
	flow.Map(b, intTask("never", 1, task.Options{}), flow.Convert(flow.Const(0), func(int) []int { panic("no list") }))
	f, err := b.Build()
	require.NoError(t, err)
	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	require.ErrorIs(t, err, executor.ErrBadInput)
	assert.Equal(t, map[string]task.State{
		"inc": task.Failed, "inc[0]": task.Success, "inc[1]": task.Failed, "inc[2]": task.Success,
		"never": task.Failed,
	}, states(res))
	c, _ := res.Task("inc[1]")
	assert.Empty(t, c.Attempts, "a bad input fails the run without an attempt, and is not retried")
	assert.ErrorContains(t, c.Err, "integer divide by zero")
	nv, _ := res.Task("never")
	assert.Zero(t, nv.Children)
	assert.True(t, errors.Is(nv.Err, executor.ErrBadInput))
}

func TestOutcomeRoundTripsThroughJSON(t *testing.T) {
	in := []flow.Outcome[string]{
		{Value: "ok", State: task.Success},
		{State: task.Failed, Err: &executor.PanicError{Task: "job", Value: "boom", Stack: []byte("stack")}},
		{State: task.Skipped, Err: task.Skip("nothing")},
		{State: task.Failed, Err: errors.New("disk full")},
	}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	var out []flow.Outcome[string]
	require.NoError(t, json.Unmarshal(data, &out))
	require.Len(t, out, 4)
	assert.Equal(t, in[0], out[0])
	var pe *executor.PanicError
	require.ErrorAs(t, out[1].Err, &pe)
	assert.Equal(t, "boom", pe.Value)
	assert.Equal(t, task.Skipped, out[2].State)
	assert.Equal(t, executor.ClassSkip, executor.ClassOf(out[2].Err))
	assert.Equal(t, "disk full", out[3].Err.Error())
	assert.Equal(t, executor.ClassFailure, executor.ClassOf(out[3].Err))
}
