// Package local is the inline executor: each call runs on the goroutine
// that submits it, so a flow on it runs one task at a time, in an order you
// can step through in a debugger. Pick it for tests, debugging and small
// programs; pick executor/pool for concurrency and executor/subprocess when
// a runaway task must really be stopped.
//
// Timeouts are soft. A call without a limit runs on the caller's goroutine
// with no extra goroutine. A call with a limit runs on a helper goroutine
// while the caller waits; at the limit the call's context is cancelled with
// an *executor.TimeoutError as its cause and the caller gets that error at
// once. A task that ignores its context cannot be stopped: it is abandoned,
// keeps running on its goroutine, is counted in Stats.Abandoned and logged
// once (after the answer, so a slow logger never delays one), and Shutdown
// waits for it. A limited call whose return the helper observes at or after
// its deadline is late (the rule of executor.TimeoutHandler) and answered
// with the *executor.TimeoutError even if the timer has not fired.
//
// runtime.Goexit in a limited call is answered as an *executor.PanicError
// matching executor.ErrGoexit and the helper goroutine is replaced; in a
// call without a limit it ends the caller's goroutine, as in plain Go (see
// Executor.Submit). Every call runs at once, so Submit never waits for
// room and there is no TrySubmit.
package local

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/internal/callstats"
	"github.com/flowline-go/flowline/internal/deadlinectx"
)

// Options configure an Executor. The zero value is ready to use.
type Options struct {
	// Logger receives the executor's own messages (an abandoned call, for
	// instance), named "local". Nil means no logging. Task log lines go to
	// each Call's Logger instead.
	Logger hclog.Logger
}

// Executor runs calls inline. The zero value is not usable: call New.
type Executor struct {
	logger hclog.Logger
	closed atomic.Bool

	stats callstats.Counters

	mu      sync.Mutex
	idle    []*helper            // helpers waiting for a limited call
	late    map[*helper]struct{} // helpers running abandoned calls
	live    int                  // helper goroutines alive, and abandonment logs being written
	drained chan struct{}        // closed once closed and live == 0
}

var _ executor.Executor = (*Executor)(nil)

// maxIdleHelpers bounds the helper goroutines kept warm for limited calls.
// One is enough for a single submitting goroutine; a few more cover programs
// that submit from several goroutines at once.
const maxIdleHelpers = 4

// New returns an Executor.
func New(opts Options) *Executor {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Executor{
		logger:  logger.Named("local"),
		late:    make(map[*helper]struct{}),
		drained: make(chan struct{}),
	}
}

// Enforcement returns executor.Soft.
func (e *Executor) Enforcement() executor.Enforcement { return executor.Soft }

// Submit runs call and returns its completed Future: Submit returns when the
// call has returned, timed out, or been cancelled. It fails with
// executor.ErrClosed after Shutdown and with an error for a Call without a
// Handler. A context that has already ended gives a Future with an
// *executor.CanceledError and the task does not run. Submit never waits
// for room: every call runs at once, so local has no TrySubmit.
//
// Without a limit the call runs on the calling goroutine and a cancellation
// reaches the task only through its context: a task that ignores it keeps
// Submit waiting until it returns. A task that calls runtime.Goexit there
// ends the calling goroutine, as it would in plain Go, and Submit does not
// return; the call is counted as Failed (Stats stay balanced) and logged at
// Warn. With a limit, Submit returns at the limit or at the cancellation,
// whatever the task does, and a Goexit in the task is answered as an
// *executor.PanicError matching executor.ErrGoexit.
//
// Whether a limited call is late follows the rule of
// executor.TimeoutHandler: the helper goroutine notes the moment the task
// returns, and a return noted at or after start + Limit is answered with a
// *executor.TimeoutError (Stopped set), even if the timer has not fired.
func (e *Executor) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	if e.closed.Load() {
		return nil, executor.ErrClosed
	}
	if call.Handler == nil {
		return nil, errors.New("executor/local: Submit with a nil Handler")
	}
	e.stats.Submitted.Add(1)
	if ctx.Err() != nil {
		err := executor.NewCanceledError(call.Name(), ctx)
		e.stats.Ended(err)
		return executor.Completed(nil, err), nil
	}
	if call.Limit <= 0 {
		return e.runInline(ctx, &call), nil
	}
	return e.runLimited(ctx, call)
}

// runInline runs a call without a limit on the calling goroutine.
func (e *Executor) runInline(ctx context.Context, call *executor.Call) *executor.Future {
	e.stats.Running.Add(1)
	returned := false
	defer func() {
		if !returned {
			e.goexited(call)
		}
	}()
	f := executor.RunInline(ctx, call)
	returned = true
	e.stats.Running.Add(-1)
	_, err, _ := f.Result()
	if cerr := deadlinectx.CallerEnded(call.Name(), ctx, err); cerr != err {
		// the task gave up because its caller did
		f, err = completed(nil, cerr, call.Trace != nil, f.Started()), cerr
	}
	e.stats.Ended(err)
	return f
}

// goexited counts and logs an inline call whose task called
// runtime.Goexit: only that gets past RunInline without its return
// (RunInline recovers panics), and it ends the caller's goroutine, so
// nobody will see an answer.
func (e *Executor) goexited(call *executor.Call) {
	e.stats.Running.Add(-1)
	e.stats.Ended(&executor.PanicError{Task: call.Name(), Value: executor.ErrGoexit})
	e.logger.Warn("task called runtime.Goexit on the caller's goroutine; the goroutine ends",
		"task", call.Name(), "run", call.RunID, "attempt", call.Attempt)
}

// helper is a goroutine that runs limited calls one at a time, kept warm so
// that a limit costs a hand-off, not a goroutine start. Its fields describe
// the call it runs; they are reused from call to call, so a limited call
// allocates only what the task can keep (its context and its Future).
type helper struct {
	start  chan struct{} // a call is ready in the fields below
	done   chan struct{} // size 1: the call returned and its submitter waits
	timer  *time.Timer   // the submitter's, while it waits
	goexit func(*executor.PanicError)

	// Written by the submitter before start, read by the helper after.
	call  executor.Call
	ctx   *deadlinectx.Context
	began time.Time

	// Guarded by Executor.mu: the helper sets finished, returned, value and
	// err when the call returns, the submitter sets abandoned when it stops
	// waiting; whichever comes second knows what the other did. returned
	// is when the helper saw the call return, for the late rule.
	finished, abandoned bool
	returned            time.Time
	value               any
	err                 error
}

func (e *Executor) runLimited(ctx context.Context, call executor.Call) (*executor.Future, error) {
	h := e.takeHelper()
	if h == nil { // Shutdown began after Submit's check: not accepted after all
		e.stats.Submitted.Add(^uint64(0))
		return nil, executor.ErrClosed
	}
	// Keep what this call needs in locals: once abandoned, h belongs to the
	// helper, which may clear it and serve another call.
	began := time.Now()
	h.began = began
	h.call = call
	cctx := deadlinectx.New(executor.WithCall(ctx, &h.call), began.Add(call.Limit))
	h.ctx = cctx
	h.finished, h.abandoned = false, false
	e.stats.Running.Add(1)
	h.timer.Reset(call.Limit)
	h.start <- struct{}{}

	select {
	case <-h.done:
		return e.collect(ctx, h), nil
	case now := <-h.timer.C:
		terr := &executor.TimeoutError{
			Task:        call.Name(),
			Limit:       call.Limit,
			Elapsed:     now.Sub(began),
			Enforcement: executor.Soft,
		}
		if e.abandon(h, "timed out", &call, began) {
			e.stats.Ended(terr)
			cctx.Expire(terr)
			return completed(nil, terr, call.Trace != nil, began), nil
		}
	case <-ctx.Done():
		if e.abandon(h, "cancelled", &call, began) {
			err := executor.NewCanceledError(call.Name(), ctx)
			e.stats.Ended(err)
			return completed(nil, err, call.Trace != nil, began), nil
		}
	}
	// The call returned while we decided to give up on it: it was seen
	// returning first, so the late rule decides.
	<-h.done
	return e.collect(ctx, h), nil
}

// collect takes the result of a call that returned before its submitter
// gave up on it, applies the late rule, answers a task that gave up on its
// caller's ended context as cancelled, and makes its helper idle again.
func (e *Executor) collect(ctx context.Context, h *helper) *executor.Future {
	h.timer.Stop()
	v, err := h.value, h.err
	if te := deadlinectx.Late(h.call.Name(), h.call.Limit, h.began, h.returned, executor.Soft); te != nil {
		v, err = nil, te
	} else if cerr := deadlinectx.CallerEnded(h.call.Name(), ctx, err); cerr != err {
		v, err = nil, cerr // the task gave up because its caller did
	}
	timed, began := h.call.Trace != nil, h.began
	h.call, h.ctx, h.value, h.err = executor.Call{}, nil, nil, nil
	e.stats.Ended(err)
	e.putBack(h)
	return completed(v, err, timed, began)
}

// completed returns a completed future, with its start recorded for a
// call with a Trace (see executor.Call.Trace).
func completed(v any, err error, timed bool, began time.Time) *executor.Future {
	if !timed {
		return executor.Completed(v, err)
	}
	p := executor.NewPromise()
	p.SetStarted(began)
	p.Complete(v, err)
	return p.Future()
}

// abandon marks h's call as abandoned unless it has already returned, and
// reports whether it did. The abandonment is logged on a goroutine of its
// own, counted in live so that Shutdown waits for it: the answer must not
// wait for the executor's logger, which may be slow or blocked, and no
// lock is held while it logs.
func (e *Executor) abandon(h *helper, why string, call *executor.Call, began time.Time) bool {
	e.mu.Lock()
	if h.finished {
		e.mu.Unlock()
		return false
	}
	h.abandoned = true
	e.late[h] = struct{}{}
	e.stats.Abandoned.Add(1)
	e.live++
	e.mu.Unlock()
	task, run, attempt, limit, ran := call.Name(), call.RunID, call.Attempt, call.Limit, time.Since(began)
	go func() {
		defer e.gone()
		e.logger.Warn("call abandoned; it may still be running",
			"why", why, "task", task, "run", run, "attempt", attempt, "ran", ran, "limit", limit)
	}()
	return true
}

// gone counts out a goroutine of the executor's as it ends.
func (e *Executor) gone() {
	e.mu.Lock()
	e.live--
	if e.closed.Load() && e.live == 0 {
		close(e.drained)
	}
	e.mu.Unlock()
}

// takeHelper returns an idle helper or starts one; nil after Shutdown.
func (e *Executor) takeHelper() *helper {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil
	}
	if n := len(e.idle); n > 0 {
		h := e.idle[n-1]
		e.idle = e.idle[:n-1]
		return h
	}
	h := &helper{start: make(chan struct{}), done: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
	h.timer.Stop()
	h.goexit = func(pe *executor.PanicError) {
		e.returned(h, nil, pe)
		go e.serve(h) // this goroutine is ending: the new one takes its place in live
	}
	e.live++
	go e.serve(h)
	return h
}

// putBackLocked makes h idle again, or retires it after Shutdown or when
// enough helpers are idle. Whoever last used h calls it: the submitter
// after an answer in time, the helper itself after an abandoned call
// returns. The caller holds e.mu.
func (e *Executor) putBackLocked(h *helper) {
	if e.closed.Load() || len(e.idle) >= maxIdleHelpers {
		close(h.start)
		return
	}
	e.idle = append(e.idle, h)
}

func (e *Executor) putBack(h *helper) {
	e.mu.Lock()
	e.putBackLocked(h)
	e.mu.Unlock()
}

// serve runs calls until its start channel is closed. A task that calls
// runtime.Goexit ends serve's goroutine: h.goexit answers the call and
// starts a new goroutine in its place, which keeps live right.
func (e *Executor) serve(h *helper) {
	for range h.start {
		v, err := h.call.Handler.RunOnGoexit(h.ctx, h.call.Input, h.goexit)
		e.returned(h, v, err)
	}
	e.gone()
}

// returned ends h's call with what it returned: it hands the result to the
// waiting submitter, or, for an abandoned call, makes h idle again.
func (e *Executor) returned(h *helper, v any, err error) {
	h.ctx.Release()
	e.stats.Running.Add(-1)
	e.mu.Lock()
	h.finished, h.returned = true, time.Now()
	if !h.abandoned {
		h.value, h.err = v, err
		h.done <- struct{}{} // never blocks: size 1, one call at a time
		e.mu.Unlock()
		return
	}
	delete(e.late, h)
	e.stats.Abandoned.Add(-1)
	call, ran := h.call, h.returned.Sub(h.began)
	h.call, h.ctx, h.value, h.err = executor.Call{}, nil, nil, nil
	e.putBackLocked(h) // its submitter has gone
	e.mu.Unlock()
	e.logger.Debug("abandoned call returned", "task", call.Name(), "run", call.RunID,
		"attempt", call.Attempt, "ran", ran, "error", err)
}

// Shutdown stops intake and waits for every call that is still running,
// abandoned ones included. If ctx ends first it returns an
// *executor.ShutdownError naming them; they go on running and a later
// Shutdown waits for them again. Calls running inline on callers'
// goroutines are the callers' to wait for.
func (e *Executor) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed.Swap(true) && e.live == 0 {
		close(e.drained)
	}
	for _, h := range e.idle {
		close(h.start)
	}
	e.idle = nil
	e.mu.Unlock()

	select {
	case <-e.drained:
		return nil
	case <-ctx.Done():
	}
	e.mu.Lock()
	running := make([]string, 0, len(e.late))
	for h := range e.late {
		running = append(running, h.call.String())
	}
	e.mu.Unlock()
	slices.Sort(running)
	return &executor.ShutdownError{Running: running, Err: ctx.Err()}
}

// Stats returns a snapshot of the counters.
func (e *Executor) Stats() executor.Stats { return e.stats.Snapshot() }
