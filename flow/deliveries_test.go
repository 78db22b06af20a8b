package flow_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// redelivering runs calls on executor/local and reports that each took
// two deliveries, as a cluster call taken over from a dead worker does.
// It embeds the executor as an executor.Executor, which hides local's
// SubmitFuture: the flow would use it instead of Submit.
type redelivering struct{ executor.Executor }

func (r redelivering) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	f, err := r.Executor.Submit(ctx, call)
	if err != nil {
		return nil, err
	}
	p := executor.NewPromise()
	f.OnDone(func() {
		v, err, _ := f.Result()
		p.SetDeliveries(2)
		p.Complete(v, err)
	})
	return p.Future(), nil
}

func TestRedeliveryIsVisibleInAttemptsAndReport(t *testing.T) {
	double := task.New("double", func(_ context.Context, n int) (int, error) { return 2 * n, nil }, task.Options{})
	b := flow.New("doubles", flow.Options{})
	out := flow.Map(b, double, flow.Const([]int{1, 2}))
	f, err := b.Build()
	require.NoError(t, err)
	ex := redelivering{local.New(local.Options{})}
	defer ex.Shutdown(context.Background())

	res, err := f.Run(context.Background(), ex, flow.RunOptions{})
	require.NoError(t, err)
	v, ok := flow.Value(res, out)
	require.True(t, ok, res.Report())
	assert.Equal(t, []int{2, 4}, v)
	for _, tr := range res.Tasks {
		if tr.Index < 0 {
			continue
		}
		require.Len(t, tr.Attempts, 1, tr.Task)
		assert.Equal(t, 2, tr.Attempts[0].Deliveries, tr.Task)
	}
	report := res.Report()
	assert.Equal(t, 2, strings.Count(report, "1 (+1 redelivered)"), report)

	// task.Run records it too.
	r := task.Run(context.Background(), ex, double, 3, task.RunOptions{})
	require.Len(t, r.Attempts, 1)
	assert.Equal(t, 2, r.Attempts[0].Deliveries)

	// An executor that does not count deliveries leaves 0, and the report
	// says nothing.
	res, err = f.Run(context.Background(), ex.Executor, flow.RunOptions{})
	require.NoError(t, err)
	for _, tr := range res.Tasks {
		for _, a := range tr.Attempts {
			assert.Zero(t, a.Deliveries)
		}
	}
	assert.NotContains(t, res.Report(), "redelivered")
}
