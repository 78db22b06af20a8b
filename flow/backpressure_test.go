package flow_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// failFast is a bounded executor whose Submit fails at once with
// executor.ErrQueueFull when it has no room (pool's TrySubmit): against
// the contract's waiting Submit, but flow must survive it.
type failFast struct{ *pool.Executor }

func (f failFast) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	return f.TrySubmit(ctx, call)
}

var _ executor.TrySubmitter = failFast{}

func numbers(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func bigMap(t *testing.T, work time.Duration, timeout time.Duration) (*flow.Flow, *flow.Node[[]string]) {
	t.Helper()
	b := flow.New("big-map", flow.Options{Timeout: timeout})
	xs := flow.Add(b, task.New("numbers", func(ctx context.Context, n int) ([]int, error) { return numbers(n), nil }, task.Options{}), flow.Const(1000))
	out := flow.Map(b, task.New("name", func(ctx context.Context, x int) (string, error) {
		if work > 0 {
			select {
			case <-time.After(work):
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		return strconv.Itoa(x), nil
	}, task.Options{}), xs)
	f, err := b.Build()
	require.NoError(t, err)
	return f, out
}

// TestLargeMapOnABoundedExecutorCompletes: a Map of 1000 on a pool of 2
// workers with a queue of 1 completes every child, whether the executor's
// Submit waits for room (the contract) or fails fast with ErrQueueFull:
// "no room yet" is never a failed or retried attempt.
func TestLargeMapOnABoundedExecutorCompletes(t *testing.T) {
	for name, mk := range map[string]func(*pool.Executor) executor.TimeoutHandler{
		"Submit waits":      func(p *pool.Executor) executor.TimeoutHandler { return p },
		"Submit fails fast": func(p *pool.Executor) executor.TimeoutHandler { return failFast{p} },
	} {
		t.Run(name, func(t *testing.T) {
			p := pool.New(pool.Options{Workers: 2, Queue: 1})
			defer func() { assert.NoError(t, p.Shutdown(context.Background())) }()
			f, out := bigMap(t, 0, 0)
			res, err := f.Run(context.Background(), mk(p), flow.RunOptions{})
			require.NoError(t, err)
			v, ok := flow.Value(res, out)
			require.True(t, ok)
			require.Len(t, v, 1000)
			for i, s := range v {
				assert.Equal(t, strconv.Itoa(i), s)
			}
			for _, tr := range res.Tasks {
				assert.Equal(t, task.Success, tr.State, tr.Task)
				if tr.Mapped {
					continue // the parent of the children has no attempt of its own
				}
				assert.Equal(t, 1, len(tr.Attempts), "%s: no attempt failed or was retried for want of room", tr.Task)
			}
			st := p.Stats()
			assert.Equal(t, uint64(1001), st.Submitted)
			assert.Equal(t, uint64(1001), st.Succeeded)
		})
	}
}

// TestFlowTimeoutWhileWaitingForRoom: a flow timeout while attempts wait
// for room stops the run cleanly: every task final, nothing left running.
func TestFlowTimeoutWhileWaitingForRoom(t *testing.T) {
	for name, mk := range map[string]func(*pool.Executor) executor.TimeoutHandler{
		"Submit waits":      func(p *pool.Executor) executor.TimeoutHandler { return p },
		"Submit fails fast": func(p *pool.Executor) executor.TimeoutHandler { return failFast{p} },
	} {
		t.Run(name, func(t *testing.T) {
			p := pool.New(pool.Options{Workers: 2, Queue: 1})
			f, _ := bigMap(t, 20*time.Millisecond, 100*time.Millisecond)
			res, err := f.Run(context.Background(), mk(p), flow.RunOptions{})
			require.Error(t, err)
			require.NotNil(t, res)
			cancelled := 0
			for _, tr := range res.Tasks {
				assert.True(t, tr.State.Final(), "%s: %v", tr.Task, tr.State)
				if tr.State == task.Cancelled {
					cancelled++
				}
				assert.NotEqual(t, task.Failed, tr.State, "%s: waiting for room is not a failure", tr.Task)
			}
			assert.Greater(t, cancelled, 900, "the children that never got room end Cancelled")
			require.NoError(t, p.Shutdown(context.Background()))
			st := p.Stats()
			assert.Zero(t, st.Running)
			assert.Equal(t, st.Submitted, st.Succeeded+st.Failed+st.TimedOut+st.Canceled)
		})
	}
}
