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
// Helper goroutines are kept warm between calls, so a limit costs a
// hand-off, not a goroutine start: at least four, and while limited calls
// run from many goroutines at once, as many idle ones as there are such
// calls running; once the load falls, each call that returns retires one
// of the surplus. Shutdown ends them all.
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
	"runtime"
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
	epoch  time.Time // helpers' armed times are kept as ns since epoch

	stats callstats.Counters

	mu      sync.Mutex
	idle    []*helper            // helpers waiting for a limited call
	busy    int                  // helpers taken for a limited call
	late    map[*helper]struct{} // helpers running abandoned calls
	live    int                  // helper goroutines alive, and abandonment logs being written
	drained chan struct{}        // closed once closed and live == 0
}

var _ executor.Executor = (*Executor)(nil)

// minIdleHelpers is how many helper goroutines are kept warm for limited
// calls whatever the load: one is enough for a single submitting
// goroutine, a few more cover programs that submit from several
// goroutines at once. Beyond it, the idle helpers kept follow the load:
// no more than there are limited calls running (see putBackLocked), so
// that 1000 goroutines submitting at once do not start and retire a
// goroutine per call, and the helpers of a past burst are retired, one
// per call that returns, once the load falls.
const minIdleHelpers = 4

// yieldsBeforePark is how many times a limited call's submitter yields
// its CPU, waiting for a quick return, before it parks. One is enough for
// the helper readied by the hand-off to run on the submitter's P and
// return a quick call; each further yield is one more trip through the
// runtime's global run queue (under its lock) for a call that runs long,
// and with 1000 calls timing out at once those trips measurably delay
// the answers (see docs/benchmarks.md, Local).
const yieldsBeforePark = 1

// New returns an Executor.
func New(opts Options) *Executor {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Executor{
		logger:  logger.Named("local"),
		epoch:   time.Now(),
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
	var g givenUp
	f, err := e.runLimited(ctx, &call, &g)
	if g.p != (executor.Promise{}) {
		return e.answerGivenUp(ctx, &call, &g), nil
	}
	return f, err
}

// givenUp is a limited call its submitter gave up on, at its deadline or
// at its caller's cancellation, which runLimited leaves to Submit to
// answer. The answer (the error's allocation, the context's cancellation)
// is the deepest work on the submitter's goroutine, and a goroutine
// started for one call has 2 KiB of stack at first: made from inside
// runLimited, the answer made the runtime copy that stack to a larger
// one at nearly every timed-out call; made from Submit, with runLimited's
// frame gone, it mostly fits (runtime.copystack 17% of the CPU of
// bench/cmd/poolbench's local lateness rows before, 9% after).
type givenUp struct {
	p executor.Promise // zero: not given up
	// For a timed-out call only: what its TimeoutError and the expiry of
	// its context need.
	lctx       *deadlinectx.Lazy
	began, now time.Time
	timedOut   bool // else cancelled
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
// allocates only what the task or the caller can keep: its Future with its
// identity context (one allocation) and its deadline context (another).
//
// What a hand-off costs beyond the two goroutine switches is kept off the
// common path: no mutex (the result crosses in ret), and no runtime timer
// operation per call (see arm). A parked submitter waits on wake alone, or
// with its context's Done: a select on a timer's channel would add and
// remove that timer from the runtime's heap each time it blocks.
type helper struct {
	start chan struct{} // a call is ready in the fields below; closed: retire
	wake  chan struct{} // size 1: the call returned, or the timer fired
	timer *time.Timer   // an AfterFunc that sends on wake
	// armed is when timer fires, in ns since the executor's epoch; 0:
	// stopped or fired. The submitter sets it, the timer's function clears
	// it.
	armed  atomic.Int64
	goexit func(*executor.PanicError)

	// ret hands the result back: rRunning while the call runs, rWaiting
	// once the submitter parks, rDone once the helper has filled the
	// result fields below, rAbandoned once the submitter has given up on
	// the call. Whoever moves it out of rRunning or rWaiting decides who
	// answers.
	ret atomic.Uint32

	// Written by the submitter before start, read by the helper after.
	handler  *executor.Handler
	input    any
	ctx      *deadlinectx.Lazy
	began    time.Time
	deadline time.Time

	// Written by the helper before it sets ret to rDone, read by the
	// submitter after; ran is how long after began the helper saw the
	// call return, for the late rule (time.Since reads only the monotonic
	// clock, where time.Now reads the wall clock too).
	ran   time.Duration
	value any
	err   error

	// Set for an abandoned call only, under Executor.mu: for Shutdown's
	// list.
	call executor.Call
}

const (
	rRunning uint32 = iota
	rWaiting
	rDone
	rAbandoned
)

// runLimited runs a limited call on a helper and returns its answer, or
// fills g with a call it gave up on (see givenUp).
func (e *Executor) runLimited(ctx context.Context, call *executor.Call, g *givenUp) (*executor.Future, error) {
	h := e.takeHelper()
	if h == nil { // Shutdown began after Submit's check: not accepted after all
		e.stats.Submitted.Add(^uint64(0))
		return nil, executor.ErrClosed
	}
	// Keep what this call needs in locals: once abandoned, h belongs to the
	// helper, which may clear it and serve another call.
	began := time.Now()
	deadline := began.Add(call.Limit)
	p, cc := executor.Prepare(ctx, call)
	if call.Trace != nil {
		p.SetStarted(began)
	}
	lctx := deadlinectx.NewLazy(cc, deadline)
	h.handler, h.input, h.ctx, h.began, h.deadline = call.Handler, call.Input, lctx, began, deadline
	h.ret.Store(rRunning)
	e.stats.Running.Add(1)
	h.start <- struct{}{} // the helper arms the timer (see serve)

	// Yield before parking: the helper readied by the send runs on this
	// CPU at once, and a call that returns meanwhile is collected without
	// the wake-up hand-off back (the runtime waking an idle thread for
	// this goroutine, about a microsecond on a virtual machine).
	for i := 0; i < yieldsBeforePark && h.ret.Load() == rRunning; i++ {
		runtime.Gosched()
	}
	done := ctx.Done()
	for {
		if !h.ret.CompareAndSwap(rRunning, rWaiting) && h.ret.Load() == rDone {
			return e.collect(ctx, h, p, call, began), nil
		}
		if done == nil {
			<-h.wake
		} else {
			select {
			case <-h.wake:
			case <-done:
				if e.abandon(h, "cancelled", call, began) {
					g.p = p // its context ends with the caller's
					return nil, nil
				}
				continue // returned meanwhile: the late rule decides
			}
		}
		if h.ret.Load() == rDone {
			continue
		}
		if now := time.Now(); now.Before(deadline) {
			e.arm(h, deadline) // the timer fired for an earlier call's deadline
		} else if e.abandon(h, "timed out", call, began) {
			g.p, g.lctx, g.began, g.now, g.timedOut = p, lctx, began, now, true
			return nil, nil
		}
		// else returned meanwhile, seen returning first: the late rule decides
	}
}

// answerGivenUp answers a call runLimited gave up on: at its deadline with
// an *executor.TimeoutError, its context expired with that error as the
// cause before the answer; at its caller's cancellation with an
// *executor.CanceledError.
//
//go:noinline
func (e *Executor) answerGivenUp(ctx context.Context, call *executor.Call, g *givenUp) *executor.Future {
	if !g.timedOut {
		e.stats.EndedCanceled()
		g.p.Complete(nil, executor.NewCanceledError(call.Name(), ctx))
		return g.p.Future()
	}
	terr := &executor.TimeoutError{
		Task:        call.Name(),
		Limit:       call.Limit,
		Elapsed:     g.now.Sub(g.began),
		Enforcement: executor.Soft,
	}
	e.stats.EndedTimedOut()
	g.lctx.Expire(terr)
	g.p.Complete(nil, terr)
	return g.p.Future()
}

// arm makes sure h's timer fires at or before deadline. A timer armed for
// an earlier call's deadline is left as it is, and re-armed by the
// submitter it wakes too early: calls of one limit then touch the
// runtime's timer about once per limit, not twice per call (a Reset that
// makes a timer the earliest one wakes the runtime's timer thread, which
// on a virtual machine costs about a microsecond).
func (e *Executor) arm(h *helper, deadline time.Time) {
	d := deadline.Sub(e.epoch)
	if a := h.armed.Load(); a != 0 && a <= int64(d) {
		return
	}
	h.armed.Store(int64(d))
	h.timer.Reset(time.Until(deadline))
}

// tick is h's timer function: it wakes the submitter, which checks the
// time itself.
func (h *helper) tick() {
	h.armed.Store(0)
	select {
	case h.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// collect takes the result of a call that returned before its submitter
// gave up on it, applies the late rule, answers a task that gave up on its
// caller's ended context as cancelled, and makes its helper idle again.
func (e *Executor) collect(ctx context.Context, h *helper, p executor.Promise, call *executor.Call, began time.Time) *executor.Future {
	v, err := h.value, h.err
	if te := deadlinectx.Late(call.Name(), call.Limit, began, began.Add(h.ran), executor.Soft); te != nil {
		v, err = nil, te
	} else if err != nil {
		if cerr := deadlinectx.CallerEnded(call.Name(), ctx, err); cerr != err {
			v, err = nil, cerr // the task gave up because its caller did
		}
	}
	h.handler, h.input, h.ctx, h.value, h.err = nil, nil, nil, nil, nil
	e.stats.Ended(err)
	e.putBack(h)
	p.Complete(v, err)
	return p.Future()
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
// reports whether it did. The abandonment is logged, if the logger logs
// at Warn, on a goroutine of its own, counted in live so that Shutdown
// waits for it: the answer must not wait for the executor's logger, which
// may be slow or blocked, and no lock is held while it logs.
func (e *Executor) abandon(h *helper, why string, call *executor.Call, began time.Time) bool {
	logs := e.logger.IsWarn() // no goroutine for a line nobody reads
	e.mu.Lock()
	// Under the mutex, so that the helper, which sees rAbandoned only
	// after this, finds h in late, with its call, when it takes the mutex
	// in turn.
	if !h.ret.CompareAndSwap(rWaiting, rAbandoned) {
		e.mu.Unlock()
		return false
	}
	h.call = *call
	e.late[h] = struct{}{}
	e.stats.Abandoned.Add(1)
	if !logs {
		e.mu.Unlock()
		return true
	}
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
	e.busy++
	if n := len(e.idle); n > 0 {
		h := e.idle[n-1]
		e.idle = e.idle[:n-1]
		return h
	}
	h := &helper{start: make(chan struct{}), wake: make(chan struct{}, 1)}
	h.timer = time.AfterFunc(time.Hour, h.tick)
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
	e.busy--
	if e.closed.Load() || len(e.idle) >= max(minIdleHelpers, e.busy) {
		retire(h)
		return
	}
	e.idle = append(e.idle, h)
}

func (e *Executor) putBack(h *helper) {
	e.mu.Lock()
	e.putBackLocked(h)
	e.mu.Unlock()
}

// retire ends an idle helper's goroutine and stops its timer.
func retire(h *helper) {
	h.timer.Stop()
	close(h.start)
}

// serve runs calls until its start channel is closed. A task that calls
// runtime.Goexit ends serve's goroutine: h.goexit answers the call and
// starts a new goroutine in its place, which keeps live right.
func (e *Executor) serve(h *helper) {
	for range h.start {
		// The helper, not the submitter, arms the timer: a timer Reset is
		// a deep call chain in the runtime, which makes a submitter on a
		// new goroutine (one per request, say) grow and copy its first
		// stack; the helper's has grown once.
		e.arm(h, h.deadline)
		v, err := h.handler.RunOnGoexit(h.ctx, h.input, h.goexit)
		e.returned(h, v, err)
	}
	e.gone()
}

// returned ends h's call with what it returned: it hands the result to the
// waiting submitter, or, for an abandoned call, makes h idle again.
func (e *Executor) returned(h *helper, v any, err error) {
	ran := time.Since(h.began)
	h.ctx.Release()
	e.stats.Running.Add(-1)
	h.ran, h.value, h.err = ran, v, err
	if h.ret.CompareAndSwap(rRunning, rDone) {
		return // the submitter sees it before it parks
	}
	if h.ret.CompareAndSwap(rWaiting, rDone) {
		select {
		case h.wake <- struct{}{}:
		default: // a timer's wake-up is pending: the submitter sees rDone after it
		}
		return
	}
	// rAbandoned: the submitter has gone.
	e.mu.Lock()
	delete(e.late, h)
	e.stats.Abandoned.Add(-1)
	call := h.call
	h.handler, h.input, h.ctx, h.value, h.err = nil, nil, nil, nil, nil
	h.call = executor.Call{}
	e.putBackLocked(h)
	e.mu.Unlock()
	if e.logger.IsDebug() { // its arguments cost allocations
		e.logger.Debug("abandoned call returned", "task", call.Name(), "run", call.RunID,
			"attempt", call.Attempt, "ran", ran, "error", err)
	}
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
		retire(h)
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
