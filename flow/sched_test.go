package flow_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// chainOf returns a flow of n tasks of tk, each after the one before.
func chainOf(t *testing.T, tk *task.Task[struct{}, struct{}], n int) *flow.Flow {
	t.Helper()
	b := flow.New("chain", flow.Options{})
	var prev *flow.Node[struct{}]
	for i := range n {
		nd := flow.Add(b, tk, nil).Named(fmt.Sprintf("t%d", i))
		if prev != nil {
			nd.After(prev)
		}
		prev = nd
	}
	f, err := b.Build()
	require.NoError(t, err)
	return f
}

// TestCompletionsHandledOnPoolWorkers: on executor/pool a completion is
// handled on the worker that completes the call, which submits the next
// tasks from there (see the flow's dispatch). Under -race, on the real
// clock: every task runs once, in dependency order, and the hooks
// (OnState here, appending to a slice without a lock) are never called
// concurrently; repeated runs of one flow reuse the runs' futures and
// runners.
func TestCompletionsHandledOnPoolWorkers(t *testing.T) {
	var running atomic.Int32
	var calls atomic.Int64
	tk := task.New("t", func(ctx context.Context, _ struct{}) (struct{}, error) {
		calls.Add(1)
		return struct{}{}, nil
	}, task.Options{})
	chain := chainOf(t, tk, 300)
	wide := func() *flow.Flow {
		b := flow.New("wide", flow.Options{})
		var prev []*flow.Node[struct{}]
		for l := range 10 {
			var cur []*flow.Node[struct{}]
			for w := range 100 {
				n := flow.Add(b, tk, nil).Named(fmt.Sprintf("t%d.%d", l, w))
				if prev != nil {
					n.After(prev[w], prev[(w+7)%100])
				}
				cur = append(cur, n)
			}
			prev = cur
		}
		f, err := b.Build()
		require.NoError(t, err)
		return f
	}()
	for _, workers := range []int{1, 2, 8} {
		ex := newPool(t, workers)
		for _, f := range []*flow.Flow{chain, wide} {
			for round := range 3 {
				calls.Store(0)
				var changes []task.Change // not synchronised: -race checks the hook is serialised
				res, err := f.Run(context.Background(), ex, flow.RunOptions{OnState: func(c task.Change) {
					if running.Add(1) != 1 {
						t.Errorf("OnState called concurrently")
					}
					changes = append(changes, c)
					running.Add(-1)
				}})
				require.NoError(t, err, "%d workers, round %d", workers, round)
				assert.Equal(t, int64(f.Len()), calls.Load())
				assert.Len(t, changes, 2*f.Len())
				end := map[string]int{}
				for k, c := range changes {
					if c.To == task.Success {
						end[c.Task] = k
					}
				}
				for _, tr := range res.Tasks {
					require.Equal(t, task.Success, tr.State, tr.Task)
					require.Len(t, tr.Attempts, 1, tr.Task)
					assert.Regexp(t, `^pool/\d+$`, tr.Attempts[0].Worker)
					assert.False(t, tr.Start.After(tr.End), tr.Task)
				}
				// In dependency order: a task starts after its upstream ended.
				if f == chain {
					for i := 1; i < f.Len(); i++ {
						prev, cur := res.Tasks[i-1], res.Tasks[i]
						assert.False(t, cur.Start.Before(prev.End), "%s started before %s ended", cur.Task, prev.Task)
						assert.Less(t, end[prev.Task], end[cur.Task])
					}
				}
			}
		}
	}
}

// TestCancelWhileCompletionsHandledOnWorkers: a run cancelled from inside
// a task, while completions are handled on pool workers, ends Cancelled
// with every task final and nothing left running (goleak).
func TestCancelWhileCompletionsHandledOnWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	tk := task.New("t", func(ctx context.Context, _ struct{}) (struct{}, error) {
		if n.Add(1) == 100 {
			cancel()
		}
		return struct{}{}, nil
	}, task.Options{})
	f := chainOf(t, tk, 1000)
	ex := newPool(t, 2)
	res, err := f.Run(ctx, ex, flow.RunOptions{})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, task.Cancelled, res.State)
	var ok, cancelled int
	for _, tr := range res.Tasks {
		switch tr.State {
		case task.Success:
			ok++
		case task.Cancelled:
			cancelled++
			assert.ErrorIs(t, tr.Err, context.Canceled, tr.Task)
		default:
			t.Errorf("%s ended %v", tr.Task, tr.State)
		}
	}
	assert.Equal(t, f.Len(), ok+cancelled)
	assert.GreaterOrEqual(t, ok, 99, "the tasks before the cancellation succeeded")
	assert.Less(t, int(n.Load()), f.Len(), "the run stopped")
	assert.Equal(t, int64(0), ex.Stats().Running)
}

// TestResultsOutliveTheNextRun: a run's Result keeps its records while the
// flow's next runs reuse the task runners, futures and working memory.
func TestResultsOutliveTheNextRun(t *testing.T) {
	b := flow.New("sums", flow.Options{})
	n := flow.Param[int](b, "n")
	xs := flow.Add(b, task.New("xs", func(_ context.Context, n int) ([]int, error) {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}, task.Options{}), n)
	doubled := flow.Map(b, intTask("double", 0, task.Options{}), xs)
	f, err := b.Build()
	require.NoError(t, err)
	for _, ex := range []executor.TimeoutHandler{newLocal(t), newPool(t, 2)} {
		var results []*flow.Result
		for k := range 4 {
			res, err := f.Run(context.Background(), ex, flow.RunOptions{RunID: fmt.Sprintf("r%d", k), Args: []flow.Arg{n.Set(10 * (k + 1))}})
			require.NoError(t, err)
			results = append(results, res)
		}
		for k, res := range results {
			v, ok := flow.Value(res, doubled)
			require.True(t, ok)
			assert.Len(t, v, 10*(k+1))
			assert.Len(t, res.Tasks, 2+10*(k+1))
			for _, tr := range res.Tasks {
				assert.Equal(t, task.Success, tr.State, tr.Task)
				assert.Equal(t, fmt.Sprintf("r%d/%s", k, tr.Task), tr.RunID)
				if !tr.Mapped {
					require.Len(t, tr.Attempts, 1, tr.Task)
					assert.Equal(t, 1, tr.Attempts[0].N)
				}
			}
		}
	}
}
