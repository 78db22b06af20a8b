package flow_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// sleeper is a task that sleeps for its input, or until its context ends.
var sleeper = task.New("sleeper", func(ctx context.Context, d time.Duration) (time.Duration, error) {
	select {
	case <-time.After(d):
		return d, nil
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
}, task.Options{})

// TestAttemptTimesAreExact: a run in memory shares one clock reading
// between an attempt's end and the next attempt's start (see the flow's
// stepClock), yet every attempt's times are exactly when it started and
// ended: a reading taken before a call is submitted never ends it (local
// runs the task in Submit), and one taken before the scheduler waits never
// serves after the wait (a completion, a retry's timer, the run's
// cancellation).
func TestAttemptTimesAreExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := flow.New("times", flow.Options{})
		a := flow.Add(b, sleeper, flow.Const(10*time.Millisecond)).Named("a")
		c := flow.Add(b, sleeper, flow.Const(20*time.Millisecond)).Named("c")
		join := flow.Add(b, sleeper, flow.Combine2(a, c, func(x, y time.Duration) time.Duration { return x + y })).Named("join")
		flow.Add(b, sleeper, flow.Convert(join, func(d time.Duration) time.Duration { return d / 10 })).Named("tail")
		flow.Add(b, sleeper, flow.Const(time.Millisecond)).Named("after-a").After(a)
		f, err := b.Build()
		require.NoError(t, err)

		for _, c := range []struct {
			ex  executor.TimeoutHandler
			end time.Duration // of tail, the last task
		}{
			{newLocal(t), 64 * time.Millisecond},   // one task at a time: 10+20+1+30+3 ms
			{newPool(t, 4), 53 * time.Millisecond}, // a with c, then join, then tail
			{newTestPool(t, 2, 4), 53 * time.Millisecond},
		} {
			start := time.Now()
			res, err := f.Run(context.Background(), c.ex, flow.RunOptions{})
			require.NoError(t, err)
			for label, d := range map[string]time.Duration{"a": 10 * time.Millisecond,
				"c": 20 * time.Millisecond, "join": 30 * time.Millisecond, "tail": 3 * time.Millisecond,
				"after-a": time.Millisecond} {
				tr, ok := res.Task(label)
				require.True(t, ok, label)
				require.Len(t, tr.Attempts, 1, label)
				at := tr.Attempts[0]
				assert.Equal(t, d, at.End.Sub(at.Start), "%T, %s: its attempt's duration", c.ex, label)
				assert.Equal(t, d, tr.Duration(), "%T, %s: its run's duration", c.ex, label)
			}
			tail, _ := res.Task("tail")
			assert.Equal(t, c.end, tail.End.Sub(start), "%T: tail's end", c.ex)
		}
	})
}

// TestCancelledTaskEndsWhenTheRunIsCancelled: the end of a task run that
// never started, cancelled with its run, is the time of the cancellation,
// not a reading from before the scheduler waited for it.
func TestCancelledTaskEndsWhenTheRunIsCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		flaky := task.New("flaky", func(ctx context.Context, _ struct{}) (int, error) {
			time.Sleep(time.Millisecond)
			return 0, errBoom
		}, task.Options{MaxRetries: 1, RetryDelay: time.Hour})
		b := flow.New("cancelled", flow.Options{})
		quick := flow.Add(b, sleeper, flow.Const(time.Millisecond)).Named("quick")
		slow := flow.Add(b, sleeper, flow.Const(time.Hour)).Named("slow")
		flow.Add(b, sleeper, flow.Const(time.Millisecond)).Named("join").After(quick, slow)
		f, err := b.Build()
		require.NoError(t, err)
		// A run whose only task waits for its retry: nothing completes
		// when it is cancelled, and the scheduler wakes for the
		// cancellation alone.
		b = flow.New("retrying", flow.Options{})
		flow.Add(b, flaky, nil).Named("flaky")
		g, err := b.Build()
		require.NoError(t, err)

		for _, ex := range []executor.TimeoutHandler{newLocal(t), newPool(t, 4), newTestPool(t, 2, 4)} {
			ctx, cancel := context.WithCancel(context.Background())
			start := time.Now()
			time.AfterFunc(5*time.Millisecond, cancel)
			res, err := g.Run(ctx, ex, flow.RunOptions{})
			require.ErrorIs(t, err, context.Canceled)
			tr, _ := res.Task("flaky")
			assert.Equal(t, task.Cancelled, tr.State)
			assert.Equal(t, 5*time.Millisecond, tr.End.Sub(start), "%T: flaky's end", ex)
			cancel()
		}
		for _, ex := range []executor.TimeoutHandler{newPool(t, 4), newTestPool(t, 2, 4)} {
			ctx, cancel := context.WithCancel(context.Background())
			start := time.Now()
			time.AfterFunc(5*time.Millisecond, cancel)
			res, err := f.Run(ctx, ex, flow.RunOptions{})
			require.ErrorIs(t, err, context.Canceled)
			for label, end := range map[string]time.Duration{"quick": time.Millisecond,
				"slow": 5 * time.Millisecond, "join": 5 * time.Millisecond} {
				tr, ok := res.Task(label)
				require.True(t, ok, label)
				assert.Equal(t, end, tr.End.Sub(start), "%s: its end", label)
			}
			cancel()
		}
	})
}

// TestAttemptTimesRealClock: the same on the real clock, with many runs at
// once on pools and on local: every attempt lasts at least its sleep, and
// no task run starts before an upstream ended.
func TestAttemptTimesRealClock(t *testing.T) {
	const width = 40
	b := flow.New("times-real", flow.Options{})
	root := flow.Add(b, sleeper, flow.Const(time.Millisecond)).Named("root")
	mids := make([]flow.Input[time.Duration], width)
	for i := range mids {
		mids[i] = flow.Add(b, sleeper, flow.Convert(root, func(time.Duration) time.Duration {
			return time.Duration(i%3) * time.Millisecond
		})).Named(fmt.Sprintf("mid%d", i))
	}
	flow.Add(b, sleeper, flow.Convert(flow.Collect(mids...), func([]time.Duration) time.Duration {
		return time.Millisecond
	})).Named("join")
	f, err := b.Build()
	require.NoError(t, err)

	exs := []executor.TimeoutHandler{newLocal(t), newPool(t, 2), newPool(t, 8)}
	var wg sync.WaitGroup
	for k := range 12 {
		wg.Go(func() {
			ex := exs[k%len(exs)]
			res, err := f.Run(context.Background(), ex, flow.RunOptions{})
			if !assert.NoError(t, err) {
				return
			}
			rootRun, _ := res.Task("root")
			join, _ := res.Task("join")
			for i := range width {
				mid, _ := res.Task(fmt.Sprintf("mid%d", i))
				at := mid.Attempts[0]
				assert.GreaterOrEqual(t, at.End.Sub(at.Start), time.Duration(i%3)*time.Millisecond, "mid%d's attempt", i)
				assert.False(t, mid.Start.Before(rootRun.End), "mid%d started before root ended", i)
				assert.False(t, join.Start.Before(mid.End), "join started before mid%d ended", i)
			}
			for _, tr := range []flow.TaskRun{rootRun, join} {
				assert.GreaterOrEqual(t, tr.Attempts[0].End.Sub(tr.Attempts[0].Start), time.Millisecond, tr.Task)
			}
		})
	}
	wg.Wait()
}
