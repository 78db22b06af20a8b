package task_test

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
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// flaky returns a task "flaky" that fails its first `failures` calls with
// errFlaky, then returns n+1.
func flaky(failures int32, opts task.Options) *task.Task[int, int] {
	var calls atomic.Int32
	return task.New("flaky", func(ctx context.Context, n int) (int, error) {
		if calls.Add(1) <= failures {
			return 0, errFlaky
		}
		return n + 1, nil
	}, opts)
}

var errFlaky = errors.New("flaky failure")

func newLocal(t *testing.T) *local.Executor {
	ex := local.New(local.Options{})
	t.Cleanup(func() { assert.NoError(t, ex.Shutdown(context.Background())) })
	return ex
}

func TestRetriesUntilSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := flaky(2, task.Options{MaxRetries: 2, RetryDelay: time.Second, RetryJitter: -1})
		var changes []string
		start := time.Now()
		out, res := tk.Run(context.Background(), newLocal(t), 41, task.RunOptions{
			RunID:   "r1",
			OnState: func(c task.Change) { changes = append(changes, fmt.Sprintf("%d:%v->%v", c.Attempt, c.From, c.To)) },
		})
		assert.Equal(t, 42, out)
		assert.Equal(t, task.Success, res.State)
		assert.NoError(t, res.Err)
		require.Len(t, res.Attempts, 3)
		assert.ErrorIs(t, res.Attempts[0].Err, errFlaky)
		assert.ErrorIs(t, res.Attempts[1].Err, errFlaky)
		assert.NoError(t, res.Attempts[2].Err)
		assert.Equal(t, 3*time.Second, time.Since(start), "delays of 1s then 2s, without jitter")
		assert.Equal(t, 3*time.Second, res.Duration())
		assert.Equal(t, []string{
			"1:Pending->Running", "1:Running->Retrying", "2:Retrying->Running",
			"2:Running->Retrying", "3:Retrying->Running", "3:Running->Success",
		}, changes)
		assert.Equal(t, "r1", res.RunID)
		assert.Equal(t, "flaky", res.Task)
	})
}

func TestRetriesExhausted(t *testing.T) {
	var calls atomic.Int32
	tk := task.New("flaky", func(ctx context.Context, n int) (int, error) {
		calls.Add(1)
		return 7, errFlaky
	}, task.Options{MaxRetries: 1})
	out, res := tk.Run(context.Background(), newLocal(t), 1, task.RunOptions{})
	assert.Equal(t, 0, out, "no result unless the run succeeded")
	assert.Equal(t, task.Failed, res.State)
	assert.ErrorIs(t, res.Err, errFlaky)
	assert.Len(t, res.Attempts, 2)
	assert.Equal(t, int32(2), calls.Load())
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   task.Options
		bounds [][2]time.Duration // per retry: [min, max]
	}{
		{"exponential without jitter", task.Options{RetryDelay: 100 * time.Millisecond, RetryJitter: -1},
			[][2]time.Duration{{100 * time.Millisecond, 100 * time.Millisecond}, {200 * time.Millisecond, 200 * time.Millisecond}, {400 * time.Millisecond, 400 * time.Millisecond}}},
		{"capped", task.Options{RetryDelay: time.Second, RetryMaxDelay: 3 * time.Second, RetryJitter: -1},
			[][2]time.Duration{{time.Second, time.Second}, {2 * time.Second, 2 * time.Second}, {3 * time.Second, 3 * time.Second}, {3 * time.Second, 3 * time.Second}}},
		{"cap never below the base delay", task.Options{RetryDelay: time.Minute, RetryMaxDelay: time.Second, RetryJitter: -1},
			[][2]time.Duration{{time.Minute, time.Minute}, {time.Minute, time.Minute}}},
		{"default jitter is half", task.Options{RetryDelay: 100 * time.Millisecond},
			[][2]time.Duration{{50 * time.Millisecond, 100 * time.Millisecond}, {100 * time.Millisecond, 200 * time.Millisecond}}},
		{"full jitter", task.Options{RetryDelay: 100 * time.Millisecond, RetryJitter: 5},
			[][2]time.Duration{{0, 100 * time.Millisecond}, {0, 200 * time.Millisecond}}},
		{"no delay", task.Options{}, [][2]time.Duration{{0, 0}, {0, 0}}},
		{"default cap is ten minutes", task.Options{RetryDelay: 5 * time.Minute, RetryJitter: -1},
			[][2]time.Duration{{5 * time.Minute, 5 * time.Minute}, {10 * time.Minute, 10 * time.Minute}, {10 * time.Minute, 10 * time.Minute}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.MaxRetries = len(tc.bounds)
			tk := task.New("x", func(ctx context.Context, n int) (int, error) { return 0, errFlaky }, tc.opts)
			for range 50 { // jitter is random: check the bounds many times
				r := task.NewRunner(tk, 0, task.RunOptions{})
				call := r.Start()
				for i, b := range tc.bounds {
					d, again := r.AttemptDone(call.Attempt, nil, errFlaky, "")
					require.True(t, again)
					assert.GreaterOrEqual(t, d, b[0], "retry %d", i+1)
					assert.LessOrEqual(t, d, b[1], "retry %d", i+1)
					call = r.Retry()
				}
				_, again := r.AttemptDone(call.Attempt, nil, errFlaky, "")
				assert.False(t, again, "MaxRetries exhausted")
				assert.Equal(t, task.Failed, r.State())
			}
		})
	}
}

func TestTimeoutsAreRetriedUnlessThePredicateSaysNo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		slowThenFast := func(ctx context.Context, n int) (int, error) {
			if calls.Add(1) == 1 {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			return n, nil
		}
		ex := newLocal(t)
		tk := task.New("slow", slowThenFast, task.Options{Timeout: time.Second, MaxRetries: 1})
		out, res := tk.Run(context.Background(), ex, 5, task.RunOptions{})
		assert.Equal(t, task.Success, res.State)
		assert.Equal(t, 5, out)
		require.Len(t, res.Attempts, 2)
		assert.ErrorIs(t, res.Attempts[0].Err, executor.ErrTimeout)

		calls.Store(0)
		noTimeoutRetry := task.Options{Timeout: time.Second, MaxRetries: 3,
			RetryIf: func(err error) bool { return !errors.Is(err, executor.ErrTimeout) }}
		tk = task.New("slow", slowThenFast, noTimeoutRetry)
		_, res = tk.Run(context.Background(), ex, 5, task.RunOptions{})
		assert.Equal(t, task.TimedOut, res.State)
		assert.ErrorIs(t, res.Err, executor.ErrTimeout)
		assert.Len(t, res.Attempts, 1)
	})
}

func TestSignalsAndPermanentErrorsAreNotRetried(t *testing.T) {
	errDisk := errors.New("disk full")
	for _, tc := range []struct {
		name  string
		fn    func(ctx context.Context, n int) (int, error)
		input any
		state task.State
		check func(t *testing.T, err error)
	}{
		{"skip", func(ctx context.Context, n int) (int, error) { return 0, task.Skip("nothing new") }, 1, task.Skipped,
			func(t *testing.T, err error) {
				assert.ErrorIs(t, err, task.ErrSkip)
				assert.Contains(t, err.Error(), "nothing new")
			}},
		{"fail", func(ctx context.Context, n int) (int, error) { return 0, task.Fail(errDisk) }, 1, task.Failed,
			func(t *testing.T, err error) { assert.ErrorIs(t, err, errDisk) }},
		{"fail nil", func(ctx context.Context, n int) (int, error) { return 0, task.Fail(nil) }, 1, task.Failed,
			func(t *testing.T, err error) { assert.Error(t, err) }},
		{"bad input", func(ctx context.Context, n int) (int, error) { return n, nil }, "not an int", task.Failed,
			func(t *testing.T, err error) { assert.ErrorIs(t, err, executor.ErrBadInput) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tk := task.New("t", func(ctx context.Context, n int) (int, error) {
				calls.Add(1)
				return tc.fn(ctx, n)
			}, task.Options{MaxRetries: 5})
			res := task.Run(context.Background(), newLocal(t), tk, tc.input, task.RunOptions{})
			assert.Equal(t, tc.state, res.State)
			assert.Len(t, res.Attempts, 1, "never retried")
			tc.check(t, res.Err)
		})
	}
}

func TestPanicsAreFailuresAndRetried(t *testing.T) {
	var calls atomic.Int32
	tk := task.New("panics", func(ctx context.Context, n int) (int, error) {
		calls.Add(1)
		panic("boom")
	}, task.Options{MaxRetries: 2})
	res := task.Run(context.Background(), newLocal(t), tk, 1, task.RunOptions{})
	assert.Equal(t, task.Failed, res.State)
	var pe *executor.PanicError
	require.ErrorAs(t, res.Err, &pe)
	assert.Equal(t, "boom", pe.Value)
	assert.Equal(t, int32(3), calls.Load())
}

func TestCancelDuringAttemptAndDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newLocal(t)
		waits := task.New("waits", func(ctx context.Context, n int) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		}, task.Options{MaxRetries: 3})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res := task.Run(ctx, ex, waits, 1, task.RunOptions{})
		assert.Equal(t, task.Cancelled, res.State)
		assert.Len(t, res.Attempts, 1, "a cancelled attempt is not retried")
		assert.NotErrorIs(t, res.Err, executor.ErrTimeout)

		tk := task.New("fails", func(ctx context.Context, n int) (int, error) { return 0, errFlaky },
			task.Options{MaxRetries: 3, RetryDelay: time.Hour})
		ctx2, cancel2 := context.WithCancel(context.Background())
		time.AfterFunc(time.Minute, cancel2)
		start := time.Now()
		res = task.Run(ctx2, ex, tk, 1, task.RunOptions{})
		assert.Equal(t, task.Cancelled, res.State)
		assert.Equal(t, time.Minute, time.Since(start), "the backoff wait ends at the cancellation")
		assert.ErrorIs(t, res.Err, context.Canceled)
		assert.Len(t, res.Attempts, 1)

		res = task.Run(ctx2, ex, tk, 1, task.RunOptions{})
		assert.Equal(t, task.Cancelled, res.State, "an ended context runs nothing")
		assert.Empty(t, res.Attempts)
	})
}

func TestLateResultOfAnEarlierAttemptIsIgnored(t *testing.T) {
	tk := task.New("flaky", func(ctx context.Context, n int) (int, error) { return n, nil }, task.Options{MaxRetries: 1})
	r := task.NewRunner(tk, 1, task.RunOptions{})
	first := r.Start()
	_, again := r.AttemptDone(first.Attempt, nil, &executor.TimeoutError{Task: "flaky"}, "")
	require.True(t, again)
	second := r.Retry()
	assert.Equal(t, 2, second.Attempt)

	// Attempt 1's work was abandoned and now returns a result: ignored.
	_, again = r.AttemptDone(first.Attempt, 999, nil, "")
	assert.False(t, again)
	assert.Equal(t, task.Running, r.State(), "the late result did not complete the run")

	_, again = r.AttemptDone(second.Attempt, 2, nil, "pool/1")
	assert.False(t, again)
	res := r.Result()
	assert.Equal(t, task.Success, res.State)
	assert.Equal(t, 2, res.Value)
	assert.Equal(t, "pool/1", res.Attempts[1].Worker)

	// And nothing changes a final run.
	_, again = r.AttemptDone(second.Attempt, 3, errFlaky, "")
	assert.False(t, again)
	r.End(task.Cancelled, context.Canceled)
	assert.Equal(t, task.Success, r.Result().State)
	assert.Equal(t, 2, r.Result().Value)
}

func TestRunnerMisusePanics(t *testing.T) {
	tk := flaky(0, task.Options{})
	r := task.NewRunner(tk, 1, task.RunOptions{})
	assert.PanicsWithValue(t, "task: Runner.Retry on a run that is Pending", func() { r.Retry() })
	r.Start()
	assert.PanicsWithValue(t, "task: Runner.Start on a run that is Running", func() { r.Start() })
	assert.PanicsWithValue(t, "task: Runner.Next on a run that is Running", func() { r.Next() })
	done := task.NewRunner(tk, 1, task.RunOptions{})
	call := done.Next()
	done.AttemptDone(call.Attempt, 1, nil, "")
	assert.PanicsWithValue(t, "task: Runner.Next on a run that is Success", func() { done.Next() })
	assert.PanicsWithValue(t, "task: Runner.End with state Success", func() { r.End(task.Success, nil) })
	assert.PanicsWithValue(t, "task: Runner.End with state Failed on a run that is Running", func() { r.End(task.Failed, nil) })
	assert.Panics(t, func() { task.New("", func(ctx context.Context, n int) (int, error) { return n, nil }, task.Options{}) })
	assert.Panics(t, func() { task.New[int, int]("x", nil, task.Options{}) })
	assert.Panics(t, func() { task.NewRunner(nil, 1, task.RunOptions{}) })
}

func TestEndWithoutRunning(t *testing.T) {
	var calls atomic.Int32
	tk := task.New("flaky", func(ctx context.Context, n int) (int, error) { calls.Add(1); return n, nil }, task.Options{})
	var changes []task.Change
	r := task.NewRunner(tk, 1, task.RunOptions{Label: "flaky[3]", OnState: func(c task.Change) { changes = append(changes, c) }})
	r.End(task.TriggerFailed, errors.New("upstream failed"))
	res := r.Result()
	assert.Equal(t, task.TriggerFailed, res.State)
	assert.Equal(t, "flaky[3]", res.Task)
	assert.Empty(t, res.Attempts)
	assert.Zero(t, res.Duration())
	assert.Equal(t, int32(0), calls.Load())
	require.Len(t, changes, 1)
	assert.Equal(t, task.Pending, changes[0].From)
	assert.Equal(t, task.TriggerFailed, changes[0].To)
	assert.Equal(t, "flaky[3]", changes[0].Task)
}

func TestEndFailedForAnInputThatCouldNotBeMade(t *testing.T) {
	tk := flaky(0, task.Options{MaxRetries: 3})
	r := task.NewRunner(tk, nil, task.RunOptions{})
	errInput := errors.New("input: upstream value missing")
	r.End(task.Failed, errInput)
	res := r.Take()
	assert.Equal(t, task.Failed, res.State)
	assert.Same(t, errInput, res.Err)
	assert.Empty(t, res.Attempts, "no attempt ran")
	assert.False(t, res.End.IsZero())
}

func TestTaskLoggerCarriesIdentity(t *testing.T) {
	var buf executortest.LogBuffer
	logger := buf.Logger()
	tk := task.New("greet", func(ctx context.Context, name string) (string, error) {
		task.Logger(ctx).Info("greeting", "name", name)
		id, ok := task.Info(ctx)
		if !ok {
			return "", errors.New("no identity")
		}
		return fmt.Sprintf("hello %s from %s/%s/%d", name, id.Task, id.RunID, id.Attempt), nil
	}, task.Options{Timeout: time.Minute})
	out, res := tk.Run(context.Background(), newLocal(t), "ada", task.RunOptions{RunID: "run-7", Logger: logger})
	require.Equal(t, task.Success, res.State, "%v", res.Err)
	assert.Equal(t, "hello ada from greet/run-7/1", out)
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &line))
	assert.Equal(t, "greeting", line["@message"])
	assert.Equal(t, "greet", line["task"])
	assert.Equal(t, "run-7", line["run"])
	assert.EqualValues(t, 1, line["attempt"])
	assert.Equal(t, "ada", line["name"])

	_, ok := task.Info(context.Background())
	assert.False(t, ok)
	assert.NotNil(t, task.Logger(context.Background()))
}

func TestRandomRunIDs(t *testing.T) {
	tk := flaky(0, task.Options{})
	a := task.Run(context.Background(), newLocal(t), tk, 1, task.RunOptions{})
	b := task.Run(context.Background(), newLocal(t), tk, 1, task.RunOptions{})
	assert.Len(t, a.RunID, 16)
	assert.NotEqual(t, a.RunID, b.RunID)
}

func TestRegistry(t *testing.T) {
	a := flaky(0, task.Options{})
	b := task.New("other", func(ctx context.Context, s string) (string, error) { return s, nil }, task.Options{})
	reg, err := task.NewRegistry(a, b)
	require.NoError(t, err)
	assert.Equal(t, []string{"flaky", "other"}, reg.Names())
	h, err := reg.Lookup("other")
	require.NoError(t, err)
	assert.Same(t, b.Handler(), h)

	dup := flaky(0, task.Options{})
	_, err = task.NewRegistry(a, dup)
	require.ErrorIs(t, err, executor.ErrDuplicateTask)
	assert.Contains(t, err.Error(), `"flaky"`)
	_, err = task.NewRegistry(a, nil)
	require.Error(t, err)
}

func TestOptionsAreCopied(t *testing.T) {
	tags := []string{"etl"}
	tk := task.New("t", func(ctx context.Context, n int) (int, error) { return n, nil }, task.Options{Tags: tags})
	tags[0] = "changed"
	assert.Equal(t, []string{"etl"}, tk.Options().Tags)
	tk.Options().Tags[0] = "changed too"
	assert.Equal(t, []string{"etl"}, tk.Options().Tags)
}

func TestValue(t *testing.T) {
	v, ok := task.Value[int](task.Result{State: task.Success, Value: 3})
	assert.True(t, ok)
	assert.Equal(t, 3, v)
	_, ok = task.Value[string](task.Result{State: task.Success, Value: 3})
	assert.False(t, ok, "wrong type")
	_, ok = task.Value[int](task.Result{State: task.Failed, Value: 3})
	assert.False(t, ok, "not a success")
	e, ok := task.Value[error](task.Result{State: task.Success})
	assert.True(t, ok)
	assert.Nil(t, e)
}

func TestStatesAndTriggers(t *testing.T) {
	S, F, T, K, TF, C := task.Success, task.Failed, task.TimedOut, task.Skipped, task.TriggerFailed, task.Cancelled
	for _, tc := range []struct {
		trigger  task.Trigger
		upstream []task.State
		want     bool
	}{
		{task.AllSuccessful, nil, true},
		{task.AllSuccessful, []task.State{S, K}, true},
		{task.AllSuccessful, []task.State{S, F}, false},
		{task.AllSuccessful, []task.State{S, C}, false},
		{task.AllFinished, []task.State{S, F, T, K, TF, C}, true},
		{task.AllFinished, []task.State{S, task.Running}, false},
		{task.AllFailed, []task.State{F, T, TF}, true},
		{task.AllFailed, []task.State{F, S}, false},
		{task.AllFailed, nil, true},
		{task.AnySuccessful, []task.State{F, K}, true},
		{task.AnySuccessful, []task.State{F, T}, false},
		{task.AnyFailed, []task.State{S, T}, true},
		{task.AnyFailed, []task.State{S, K, C}, false},
		{task.Trigger(99), []task.State{S}, false},
	} {
		assert.Equal(t, tc.want, tc.trigger.Allows(tc.upstream), "%v %v", tc.trigger, tc.upstream)
	}
	for s := task.Pending; s <= task.Cancelled; s++ {
		b, err := s.MarshalText()
		require.NoError(t, err)
		var back task.State
		require.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, s, back)
		assert.Equal(t, s >= task.Success, s.Final(), "%v", s)
	}
	_, err := task.State(42).MarshalText()
	assert.Error(t, err)
	var s task.State
	assert.Error(t, s.UnmarshalText([]byte("Nope")))
	assert.Equal(t, "State(42)", task.State(42).String())
	assert.Equal(t, "any-failed", task.AnyFailed.String())
	assert.Equal(t, "Trigger(9)", task.Trigger(9).String())
}

func TestPriorAttemptsAreKeptAndNumberingContinues(t *testing.T) {
	calls := 0
	tk := task.New("flaky", func(_ context.Context, _ int) (int, error) {
		calls++
		if calls == 1 {
			return 0, errors.New("first try fails")
		}
		return 7, nil
	}, task.Options{MaxRetries: 1})
	prior := []task.Attempt{{N: 1, Start: time.Now().Add(-time.Minute)}, {N: 2, Start: time.Now().Add(-time.Second)}}
	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	res := task.Run(context.Background(), ex, tk, 1, task.RunOptions{Prior: prior})
	require.Equal(t, task.Success, res.State, "the retry budget counts only this run's attempts")
	require.Len(t, res.Attempts, 4)
	assert.Equal(t, []int{1, 2, 3, 4}, []int{res.Attempts[0].N, res.Attempts[1].N, res.Attempts[2].N, res.Attempts[3].N})
	assert.Equal(t, prior[0].Start, res.Start, "the run started with its first prior attempt")
}

func TestCachedIsFinalAndHasAValue(t *testing.T) {
	tk := task.New("c", func(_ context.Context, _ int) (int, error) { return 0, nil }, task.Options{})
	r := task.NewRunner(tk, 1, task.RunOptions{})
	r.Cached(42)
	res := r.Result()
	assert.Equal(t, task.Cached, res.State)
	assert.True(t, res.State.Final())
	assert.True(t, res.State.Successful())
	assert.Empty(t, res.Attempts)
	v, ok := task.Value[int](res)
	assert.True(t, ok)
	assert.Equal(t, 42, v)
	assert.Equal(t, "Cached", res.State.String())
	assert.Panics(t, func() { r.Cached(1) }, "only a Pending run")
	assert.True(t, task.AllSuccessful.Allows([]task.State{task.Cached}))
}
