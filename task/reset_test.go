package task_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/task"
)

// TestResetRunsAgainAndLeavesTakenResults: a Runner reset after Take is a
// new Pending run of the task it is given (its options, not the last
// one's), and the record taken before, whose first attempt lives in the
// storage given by RunOptions.Attempts, is not changed by it.
func TestResetRunsAgainAndLeavesTakenResults(t *testing.T) {
	retried := task.New("retried", func(ctx context.Context, n int) (int, error) { return n, nil },
		task.Options{MaxRetries: 1, Timeout: 7})
	once := task.New("once", func(ctx context.Context, n int) (int, error) { return n, nil }, task.Options{})
	slab := make([]task.Attempt, 2)

	r := task.NewRunner(retried, 1, task.RunOptions{RunID: "a", Attempts: slab[0:0:1]})
	call := r.Start()
	assert.Equal(t, 7, int(call.Limit))
	_, again := r.AttemptDone(call.Attempt, nil, &executor.TimeoutError{Task: "retried"}, "")
	require.True(t, again, "retried once")
	call = r.Retry() // a second attempt: beyond the storage given, allocated
	_, again = r.AttemptDone(call.Attempt, 1, nil, "w1")
	require.False(t, again)
	first := r.Take()
	require.Len(t, first.Attempts, 2)
	assert.Equal(t, task.Success, first.State)

	r.Reset(once, 2, task.RunOptions{RunID: "b", Attempts: slab[1:1:2]})
	assert.Equal(t, task.Pending, r.State())
	assert.Equal(t, 0, r.Attempt())
	call = r.Start()
	assert.Zero(t, call.Limit, "the new task's options")
	_, again = r.AttemptDone(call.Attempt, nil, &executor.TimeoutError{Task: "once"}, "w2")
	assert.False(t, again, "once is not retried: the policy is the new task's")
	second := r.Take()
	assert.Equal(t, task.TimedOut, second.State)
	assert.Equal(t, "b", second.RunID)
	require.Len(t, second.Attempts, 1)
	assert.Same(t, &slab[1], &second.Attempts[0], "the first attempt is recorded in the storage given")
	assert.Equal(t, "w2", slab[1].Worker)

	// The first run's record is as it was.
	assert.Equal(t, "a", first.RunID)
	assert.Equal(t, 1, first.Value)
	assert.Equal(t, "w1", first.Attempts[1].Worker)
	assert.Equal(t, 1, first.Attempts[0].N)

	// Reset for the same task keeps using its options; a nil task panics.
	r.Reset(once, 3, task.RunOptions{})
	assert.Zero(t, r.Start().Limit)
	assert.PanicsWithValue(t, "task: Runner.Reset with a nil task", func() { r.Reset(nil, 0, task.RunOptions{}) })
}
