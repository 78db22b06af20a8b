package executor_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type order struct {
	ID    int
	Items []string
}

var double = executor.NewHandler("double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil }, nil)

func TestHandlerRunChecksAndDecodesInput(t *testing.T) {
	ctx := context.Background()
	v, err := double.Run(ctx, 21)
	require.NoError(t, err)
	assert.Equal(t, 42, v)

	v, err = double.Run(ctx, executor.Raw("4"))
	require.NoError(t, err)
	assert.Equal(t, 8, v)

	v, err = double.Run(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, 0, v, "a nil input is the zero value")

	_, err = double.Run(ctx, "21")
	var ie *executor.InputError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, "double", ie.Task)
	assert.Equal(t, "int", ie.Type)
	assert.ErrorIs(t, err, executor.ErrBadInput)
	assert.Contains(t, err.Error(), "got a value of type string")

	_, err = double.Run(ctx, executor.Raw(`"x"`))
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, executor.ClassBadInput, executor.ClassOf(err))
}

func TestHandlerRecoversPanics(t *testing.T) {
	errInner := errors.New("inner")
	h := executor.NewHandler("boom", func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			panic(errInner)
		}
		panic(fmt.Sprintf("n=%d", n))
	}, nil)
	_, err := h.Run(context.Background(), 1)
	var pe *executor.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "n=1", pe.Value)
	assert.Contains(t, string(pe.Stack), "executor_test.TestHandlerRecoversPanics")
	assert.Equal(t, `executor: task "boom" panicked: n=1`, err.Error())

	_, err = h.Run(context.Background(), 0)
	assert.ErrorIs(t, err, errInner, "a panic with an error unwraps to it")
}

func TestHandlerEncoding(t *testing.T) {
	h := executor.NewHandler("orders", func(ctx context.Context, o order) ([]string, error) { return o.Items, nil }, nil)
	assert.Equal(t, reflect.TypeFor[order](), h.InputType())
	assert.Equal(t, reflect.TypeFor[[]string](), h.OutputType())
	assert.IsType(t, executor.JSON{}, h.Codec())

	data, err := h.EncodeInput(order{ID: 1, Items: []string{"a"}})
	require.NoError(t, err)
	in, err := h.DecodeInput(data)
	require.NoError(t, err)
	assert.Equal(t, order{ID: 1, Items: []string{"a"}}, in)

	raw, err := h.EncodeInput(executor.Raw(`{"ID":2}`))
	require.NoError(t, err)
	assert.Equal(t, []byte(`{"ID":2}`), raw, "Raw passes through")

	_, err = h.EncodeInput(42)
	assert.ErrorIs(t, err, executor.ErrBadInput)

	out, err := h.EncodeOutput([]string{"x", "y"})
	require.NoError(t, err)
	back, err := h.DecodeOutput(out)
	require.NoError(t, err)
	assert.Equal(t, []string{"x", "y"}, back)

	_, err = h.EncodeOutput(make(chan int))
	var oe *executor.OutputError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "[]string", oe.Type)
	_, err = h.DecodeOutput([]byte("{"))
	assert.ErrorIs(t, err, executor.ErrBadOutput)

	anyIn := executor.NewHandler("any", func(ctx context.Context, v any) (any, error) { return v, nil }, nil)
	_, err = anyIn.EncodeInput(order{})
	assert.NoError(t, err, "any value fits an interface input")
}

func TestNewHandlerMisusePanics(t *testing.T) {
	assert.PanicsWithValue(t, "executor: NewHandler with an empty task name", func() {
		executor.NewHandler("", func(ctx context.Context, n int) (int, error) { return n, nil }, nil)
	})
	assert.PanicsWithValue(t, "executor: NewHandler with a nil function for task x", func() {
		executor.NewHandler[int, int]("x", nil, nil)
	})
}

func TestRegistry(t *testing.T) {
	var r executor.Registry // the zero value is usable
	require.NoError(t, r.Register(double))
	err := r.Register(double)
	require.ErrorIs(t, err, executor.ErrDuplicateTask)
	assert.Contains(t, err.Error(), `"double"`)
	require.Error(t, r.Register(nil))

	h, err := r.Lookup("double")
	require.NoError(t, err)
	assert.Same(t, double, h)
	_, err = r.Lookup("nope")
	var ue *executor.UnknownTaskError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, "nope", ue.Task)
	assert.ErrorIs(t, err, executor.ErrUnknownTask)

	var nilReg *executor.Registry
	_, err = nilReg.Lookup("double")
	assert.ErrorIs(t, err, executor.ErrUnknownTask)
	assert.Empty(t, nilReg.Names())

	_, err = executor.NewRegistry(double, double)
	assert.ErrorIs(t, err, executor.ErrDuplicateTask)
	r2, err := executor.NewRegistry(double)
	require.NoError(t, err)
	assert.Equal(t, []string{"double"}, r2.Names())
}

func TestFutureCompletesOnce(t *testing.T) {
	p := executor.NewPromise()
	f := p.Future()
	_, _, ok := f.Result()
	assert.False(t, ok)
	assert.True(t, p.Pending())
	select {
	case <-f.Done():
		t.Fatal("done before completion")
	default:
	}
	var calls atomic.Int32
	f.OnDone(func() { calls.Add(1) })
	p.SetWorker("pool/1")
	assert.Empty(t, f.Worker(), "the worker is known once done")

	require.True(t, p.Complete(7, nil))
	assert.False(t, p.Complete(8, errors.New("late")), "only the first completion counts")
	assert.False(t, p.Pending())
	<-f.Done()
	v, err := f.Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	assert.Equal(t, "pool/1", f.Worker())
	assert.Equal(t, int32(1), calls.Load())
	f.OnDone(func() { calls.Add(1) }) // after completion: runs at once
	assert.Equal(t, int32(2), calls.Load())
}

func TestFutureWaitIsBoundedByItsContextOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := executor.NewPromise()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := p.Future().Wait(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.True(t, p.Pending(), "the wait ended, not the call")
		time.AfterFunc(time.Minute, func() { p.Complete("late", nil) })
		v, err := p.Future().Wait(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "late", v)
	})
}

func TestFutureConcurrentWaitersAndCallbacks(t *testing.T) {
	p := executor.NewPromise()
	f := p.Future()
	var wg sync.WaitGroup
	var seen atomic.Int32
	for range 20 {
		wg.Go(func() {
			v, _ := f.Wait(context.Background())
			if v == "x" {
				seen.Add(1)
			}
		})
		wg.Go(func() { f.OnDone(func() { seen.Add(1) }) })
	}
	p.Complete("x", nil)
	wg.Wait()
	assert.Equal(t, int32(40), seen.Load())
}

func TestCompleted(t *testing.T) {
	errX := errors.New("x")
	f := executor.Completed(nil, errX)
	<-f.Done()
	_, err := f.Wait(context.Background())
	assert.Same(t, errX, err)
}

type classed struct{}

func (classed) Error() string              { return "classed" }
func (classed) ErrorClass() executor.Class { return executor.ClassFatal }

func TestClassOf(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		err  error
		want executor.Class
	}{
		{nil, ""},
		{errors.New("plain"), executor.ClassFailure},
		{fmt.Errorf("wrapped: %w", classed{}), executor.ClassFatal},
		{&executor.TimeoutError{}, executor.ClassTimeout},
		{fmt.Errorf("w: %w", context.DeadlineExceeded), executor.ClassFailure}, // a task's own deadline
		{context.Canceled, executor.ClassCanceled},
		{executor.NewCanceledError("t", ctx), executor.ClassCanceled},
		{&executor.PanicError{}, executor.ClassPanic},
		{&executor.CrashError{}, executor.ClassCrash},
		{&executor.InputError{}, executor.ClassBadInput},
		{&executor.OutputError{}, executor.ClassBadOutput},
		{&executor.UnknownTaskError{}, executor.ClassUnknownTask},
		{&executor.RemoteError{Class: executor.ClassSkip}, executor.ClassSkip},
	} {
		assert.Equal(t, tc.want, executor.ClassOf(tc.err), "%v", tc.err)
	}
}

func TestErrorsMatchTheirKindOnly(t *testing.T) {
	te := &executor.TimeoutError{Task: "t", Limit: time.Second, Elapsed: 1001 * time.Millisecond, Enforcement: executor.Hard, Stopped: true}
	assert.ErrorIs(t, te, executor.ErrTimeout)
	assert.ErrorIs(t, te, context.DeadlineExceeded)
	assert.NotErrorIs(t, te, context.Canceled)
	assert.True(t, te.Timeout())
	assert.Equal(t, `executor: task "t" timed out after 1.001s (limit 1s, hard: the work is stopped)`, te.Error())
	te.Stopped, te.Enforcement = false, executor.Soft
	assert.Contains(t, te.Error(), "soft: the work was told to stop and may still be running")

	// A cancellation whose cause is an outer timeout is still not a timeout.
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(&executor.TimeoutError{Task: "outer"})
	ce := executor.NewCanceledError("inner", ctx)
	assert.ErrorIs(t, ce, context.Canceled)
	assert.NotErrorIs(t, ce, executor.ErrTimeout)
	assert.Contains(t, ce.Error(), `task "outer" timed out`, "the cause is in the message")

	re := &executor.RemoteError{Task: "r", Class: executor.ClassCanceled, Message: "context canceled"}
	assert.ErrorIs(t, re, context.Canceled)
	assert.Equal(t, "context canceled", re.Error())

	se := &executor.ShutdownError{Running: []string{"a (run r, attempt 1)"}, Err: context.DeadlineExceeded}
	assert.ErrorIs(t, se, context.DeadlineExceeded)
	assert.Contains(t, se.Error(), "a (run r, attempt 1)")

	cr := &executor.CrashError{Task: "c", Reason: "exit status 3", Stderr: "oops"}
	assert.ErrorIs(t, cr, executor.ErrCrash)
	assert.Equal(t, `executor: task "c": worker crashed: exit status 3; stderr tail: oops`, cr.Error())
	assert.Equal(t, "soft", executor.Soft.String())
	assert.Equal(t, "enforcement(9)", executor.Enforcement(9).String())
}

func TestCallNamesAndIdentity(t *testing.T) {
	c := executor.Call{Handler: double, RunID: "r1"}
	assert.Equal(t, "double", c.Name())
	assert.Equal(t, "double (run r1, attempt 1)", c.String(), "attempt 0 is attempt 1")
	assert.Equal(t, "r1/double/1", c.ID())
	c.Attempt = 3
	assert.Equal(t, executor.Identity{Task: "double", RunID: "r1", Attempt: 3}, c.Identity())
	assert.Equal(t, "", (&executor.Call{}).Name())

	ctx := executor.WithCall(context.Background(), &c)
	id, ok := executor.CallInfo(ctx)
	assert.True(t, ok)
	assert.Equal(t, c.Identity(), id)
	_, ok = executor.CallInfo(context.Background())
	assert.False(t, ok)
	assert.NotNil(t, executor.Logger(ctx), "a call without a logger still has one")
	assert.NotNil(t, executor.Logger(context.Background()))
}

// inline is the smallest TimeoutHandler: it runs the call on Submit.
type inline struct{}

func (inline) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	v, err := call.Handler.Run(executor.WithCall(ctx, &call), call.Input)
	return executor.Completed(v, err), nil
}
func (inline) Enforcement() executor.Enforcement { return executor.Soft }

func TestRun(t *testing.T) {
	v, err := executor.Run(context.Background(), inline{}, executor.Call{Handler: double, Input: 5})
	require.NoError(t, err)
	assert.Equal(t, 10, v)
}

func TestOwnDeadlineIsAFailureNotATimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	own := fmt.Errorf("GET /: %w", ctx.Err())
	assert.Equal(t, executor.ClassFailure, executor.ClassOf(own), "a task's own deadline is its failure")
	assert.Equal(t, executor.ClassFailure, executor.ClassOf(context.DeadlineExceeded))
	assert.Equal(t, executor.ClassTimeout, executor.ClassOf(fmt.Errorf("x: %w", &executor.TimeoutError{Task: "t"})))
	assert.Equal(t, executor.ClassCanceled, executor.ClassOf(fmt.Errorf("x: %w", context.Canceled)))
	assert.Equal(t, executor.ClassCanceled, executor.ClassOf(&executor.CanceledError{Task: "t", Err: context.DeadlineExceeded}),
		"the caller's own deadline is a cancellation")
}

var quitter = executor.NewHandler("quitter", func(ctx context.Context, n int) (int, error) {
	if n > 0 {
		runtime.Goexit()
	}
	return 7, nil
}, nil)

func TestRunOnGoexitAnswersTheCall(t *testing.T) {
	var got error
	var wg sync.WaitGroup
	returned := false
	wg.Go(func() {
		_, _ = quitter.RunOnGoexit(context.Background(), 1, func(pe *executor.PanicError) { got = pe })
		returned = true
	})
	wg.Wait()
	assert.False(t, returned, "Goexit cannot be stopped: the goroutine ends")
	require.ErrorIs(t, got, executor.ErrGoexit)
	var pe *executor.PanicError
	require.ErrorAs(t, got, &pe)
	assert.Equal(t, "quitter", pe.Task)
	assert.Equal(t, executor.ClassPanic, executor.ClassOf(got))
	assert.Contains(t, got.Error(), "Goexit")
	assert.Contains(t, string(pe.Stack), "runtime.Goexit", "the stack shows where the goroutine exited")

	called := false
	v, err := quitter.RunOnGoexit(context.Background(), 0, func(*executor.PanicError) { called = true })
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	assert.False(t, called, "onGoexit is only for Goexit")

	_, err = double.RunOnGoexit(context.Background(), executor.Raw(`"x"`), func(*executor.PanicError) { called = true })
	assert.ErrorIs(t, err, executor.ErrBadInput)
	assert.False(t, called)
}

func TestRunIsolatedSurvivesGoexit(t *testing.T) {
	_, err := quitter.RunIsolated(context.Background(), 1)
	require.ErrorIs(t, err, executor.ErrGoexit)
	assert.Equal(t, executor.ClassPanic, executor.ClassOf(err))
	v, err := quitter.RunIsolated(context.Background(), 0)
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	boom := executor.NewHandler("boom", func(ctx context.Context, _ int) (int, error) { panic("boom") }, nil)
	_, err = boom.RunIsolated(context.Background(), 0)
	var pe *executor.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "boom", pe.Value)
}

func TestRunEndsTheGoroutineOnGoexit(t *testing.T) {
	var wg sync.WaitGroup
	returned := false
	wg.Go(func() {
		_, _ = quitter.Run(context.Background(), 1)
		returned = true
	})
	wg.Wait()
	assert.False(t, returned, "as in plain Go")
}

func TestCallContextsGiveEachCallItsOwnContext(t *testing.T) {
	type key struct{}
	var cs executor.CallContexts
	var ctxs []context.Context
	const n = 150 // more than one block
	for i := range n {
		parent := context.WithValue(context.Background(), key{}, i)
		c := executor.Call{Handler: double, RunID: fmt.Sprintf("run%d", i), Attempt: i + 1}
		ctxs = append(ctxs, cs.WithCall(parent, &c))
		if i == n/2 {
			cs.Drop()
		}
	}
	for i, ctx := range ctxs {
		id, ok := executor.CallInfo(ctx)
		require.True(t, ok)
		assert.Equal(t, executor.Identity{Task: "double", RunID: fmt.Sprintf("run%d", i), Attempt: i + 1}, id)
		assert.Equal(t, i, ctx.Value(key{}), "the parent's values")
	}
	var zero executor.CallContexts
	ctx := zero.WithCall(context.Background(), &executor.Call{Handler: double})
	id, _ := executor.CallInfo(ctx)
	assert.Equal(t, 1, id.Attempt, "attempt zero is 1")
	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() {
		var cs executor.CallContexts
		cs.WithCall(context.Background(), &executor.Call{Handler: double})
	}), "one block")
	assert.Equal(t, 7.0, testing.AllocsPerRun(10, func() {
		var cs executor.CallContexts
		for range 127 {
			cs.WithCall(context.Background(), &executor.Call{Handler: double})
		}
	}), "blocks of 1, 2, 4 ... 64")
}
