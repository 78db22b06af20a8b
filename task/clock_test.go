package task_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/task"
)

// TestRunnerReadsItsClock: with RunOptions.Clock, every time a run
// records (its attempts' starts and ends, its waits, its state changes)
// is a reading of that clock, in the order the run makes them.
func TestRunnerReadsItsClock(t *testing.T) {
	base := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	reads := 0
	clock := func() time.Time {
		reads++
		return base.Add(time.Duration(reads) * time.Second)
	}
	at := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
	var changes []task.Change
	r := task.NewRunner(flaky(1, task.Options{MaxRetries: 1}), 1, task.RunOptions{
		Clock:   clock,
		OnState: func(c task.Change) { changes = append(changes, c) },
	})

	r.Wait(limit.Wait{Limit: "l", Key: "k"})                    // reading 1
	call := r.Start()                                           // 2: the wait ends, attempt 1 starts
	_, again := r.AttemptDone(call.Attempt, nil, errFlaky, "w") // 3
	require.True(t, again)
	call = r.Retry()                                    // 4
	_, again = r.AttemptDone(call.Attempt, 2, nil, "w") // 5
	require.False(t, again)

	res := r.Result()
	assert.Equal(t, task.Success, res.State)
	assert.Equal(t, 5, reads, "one reading per event")
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, at(2), res.Attempts[0].Start)
	assert.Equal(t, at(3), res.Attempts[0].End)
	assert.Equal(t, at(4), res.Attempts[1].Start)
	assert.Equal(t, at(5), res.Attempts[1].End)
	assert.Equal(t, at(2), res.Start)
	assert.Equal(t, at(5), res.End)
	assert.Equal(t, time.Second, res.Waited)
	var times []time.Time
	for _, c := range changes {
		times = append(times, c.Time)
	}
	assert.Equal(t, []time.Time{at(1), at(2), at(3), at(4), at(5)}, times, "Waiting, Running, Retrying, Running, Success")
}

// TestRunWithoutAClockReadsTimeNow: the zero RunOptions read time.Now.
func TestRunWithoutAClockReadsTimeNow(t *testing.T) {
	before := time.Now()
	_, res := flaky(0, task.Options{}).Run(context.Background(), newLocal(t), 1, task.RunOptions{})
	after := time.Now()
	require.Equal(t, task.Success, res.State)
	assert.False(t, res.Start.Before(before))
	assert.False(t, res.End.After(after))
	assert.False(t, res.End.Before(res.Start))
}
