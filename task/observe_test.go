package task_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/observe/observetest"
	"github.com/flowline-go/flowline/task"
)

func TestRunReportsToItsObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := local.New(local.Options{})
		defer ex.Shutdown(context.Background())
		n := 0
		tk := task.New("retry", func(ctx context.Context, _ int) (int, error) {
			time.Sleep(time.Second)
			if n++; n < 3 {
				return 0, errors.New("not yet")
			}
			return 7, nil
		}, task.Options{MaxRetries: 5, RetryDelay: time.Minute, RetryJitter: -1})
		rec := &observetest.Recorder{}
		res := task.Run(context.Background(), ex, tk, 0, task.RunOptions{RunID: "r", Observer: rec})
		require.Equal(t, task.Success, res.State)
		spans := rec.Spans()
		require.Len(t, spans, 4, "the task run and its three attempts")
		tr := spans[0]
		assert.Equal(t, observetest.Task, tr.Kind)
		assert.Empty(t, tr.Parent, "a task run outside a flow is a root")
		assert.Equal(t, "local", tr.TaskRun.Executor)
		assert.Equal(t, "Success", tr.TaskRun.State)
		assert.Equal(t, 3, tr.TaskRun.Attempts)
		assert.Equal(t, 3*time.Second+3*time.Minute, tr.TaskRun.End.Sub(tr.TaskRun.Start),
			"three 1s attempts and backoffs of 1 and 2 minutes")
		for k, a := range spans[1:] {
			assert.Equal(t, tr.ID, a.Parent)
			assert.Equal(t, k+1, a.Attempt.N)
			assert.Equal(t, time.Second, a.Attempt.Running)
			assert.Equal(t, time.Duration(0), a.Attempt.Queued, "local runs inline")
			assert.Equal(t, k < 2, a.Attempt.Retry)
		}
	})
}

func TestRunWithoutObserverSendsNoTraceContext(t *testing.T) {
	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	var id executor.Identity
	tk := task.New("probe", func(ctx context.Context, _ int) (int, error) {
		id, _ = executor.CallInfo(ctx)
		return 0, nil
	}, task.Options{})
	res := task.Run(context.Background(), ex, tk, 0, task.RunOptions{})
	require.Equal(t, task.Success, res.State)
	assert.Empty(t, id.TraceParent)
	assert.Empty(t, id.TraceState)
}
