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
// once, and Shutdown waits for it.
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

	submitted, succeeded, failed, timedOut, canceled atomic.Uint64
	running, abandoned                               atomic.Int64

	mu      sync.Mutex
	idle    []*helper         // helpers waiting for a limited call
	live    int               // helper goroutines alive
	late    map[*job]struct{} // abandoned calls still running
	drained chan struct{}     // closed once closed and live == 0
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
		late:    make(map[*job]struct{}),
		drained: make(chan struct{}),
	}
}

// Enforcement returns executor.Soft.
func (e *Executor) Enforcement() executor.Enforcement { return executor.Soft }

// Submit runs call and returns its completed Future: Submit returns when the
// call has returned, timed out, or been cancelled. It fails with
// executor.ErrClosed after Shutdown and with an error for a Call without a
// Handler. A context that has already ended gives a Future with an
// *executor.CanceledError and the task does not run.
//
// Without a limit the call runs on the calling goroutine and a cancellation
// reaches the task only through its context: a task that ignores it keeps
// Submit waiting until it returns. With a limit, Submit returns at the limit
// or at the cancellation, whatever the task does.
func (e *Executor) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	if e.closed.Load() {
		return nil, executor.ErrClosed
	}
	if call.Handler == nil {
		return nil, errors.New("executor/local: Submit with a nil Handler")
	}
	e.submitted.Add(1)
	if ctx.Err() != nil {
		e.canceled.Add(1)
		return executor.Completed(nil, executor.NewCanceledError(call.Name(), ctx)), nil
	}
	if call.Limit <= 0 {
		e.running.Add(1)
		v, err := call.Handler.Run(executor.WithCall(ctx, &call), call.Input)
		e.running.Add(-1)
		e.count(err)
		return executor.Completed(v, err), nil
	}
	return e.runLimited(ctx, &call)
}

func (e *Executor) count(err error) {
	switch {
	case err == nil:
		e.succeeded.Add(1)
	case executor.ClassOf(err) == executor.ClassTimeout:
		e.timedOut.Add(1)
	case executor.ClassOf(err) == executor.ClassCanceled:
		e.canceled.Add(1)
	default:
		e.failed.Add(1)
	}
}

// job is one limited call handed to a helper goroutine.
type job struct {
	call  *executor.Call
	ctx   *deadlinectx.Context
	start time.Time
	value any
	err   error
	done  chan struct{} // closed by the helper when the call returns

	// abandoned is set by the submitter, under Executor.mu, when it stops
	// waiting; the helper reads it under the same lock when the call ends.
	abandoned bool
}

// helper is a goroutine that runs limited calls one at a time, kept warm so
// that a limit costs a hand-off, not a goroutine start.
type helper struct {
	jobs  chan *job
	timer *time.Timer
}

func (e *Executor) runLimited(ctx context.Context, call *executor.Call) (*executor.Future, error) {
	h := e.takeHelper()
	if h == nil {
		return nil, executor.ErrClosed
	}
	start := time.Now()
	j := &job{
		call:  call,
		ctx:   deadlinectx.New(executor.WithCall(ctx, call), start.Add(call.Limit)),
		start: start,
		done:  make(chan struct{}),
	}
	e.running.Add(1)
	h.timer.Reset(call.Limit)
	h.jobs <- j

	select {
	case <-j.done:
		h.timer.Stop()
		e.putBack(h)
		e.count(j.err)
		return executor.Completed(j.value, j.err), nil
	case <-h.timer.C:
		terr := &executor.TimeoutError{
			Task:        call.Name(),
			Limit:       call.Limit,
			Elapsed:     time.Since(start),
			Enforcement: executor.Soft,
		}
		if e.abandon(j, "timed out") {
			e.timedOut.Add(1)
			j.ctx.Expire(terr)
			return executor.Completed(nil, terr), nil
		}
	case <-ctx.Done():
		h.timer.Stop()
		if e.abandon(j, "cancelled") {
			e.canceled.Add(1)
			return executor.Completed(nil, executor.NewCanceledError(call.Name(), ctx)), nil
		}
	}
	// The call returned while we decided to give up on it: its result wins.
	<-j.done
	e.putBack(h)
	e.count(j.err)
	return executor.Completed(j.value, j.err), nil
}

// abandon marks j as abandoned unless it has already returned, and reports
// whether it did.
func (e *Executor) abandon(j *job, why string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-j.done:
		return false
	default:
	}
	j.abandoned = true
	e.late[j] = struct{}{}
	e.abandoned.Add(1)
	e.logger.Warn("call abandoned; it may still be running",
		"why", why, "task", j.call.Name(), "run", j.call.RunID, "attempt", j.call.Attempt,
		"ran", time.Since(j.start), "limit", j.call.Limit)
	return true
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
	h := &helper{jobs: make(chan *job), timer: time.NewTimer(time.Hour)}
	h.timer.Stop()
	e.live++
	go e.serve(h)
	return h
}

// putBack makes h idle again, or retires it after Shutdown or when enough
// helpers are idle. Whoever last used h calls it: the submitter after an
// answer in time, the helper itself after an abandoned call returns.
// The caller holds e.mu.
func (e *Executor) putBackLocked(h *helper) {
	if e.closed.Load() || len(e.idle) >= maxIdleHelpers {
		close(h.jobs)
		return
	}
	e.idle = append(e.idle, h)
}

func (e *Executor) putBack(h *helper) {
	e.mu.Lock()
	e.putBackLocked(h)
	e.mu.Unlock()
}

// serve runs jobs until its channel is closed.
func (e *Executor) serve(h *helper) {
	for j := range h.jobs {
		j.value, j.err = j.call.Handler.Run(j.ctx, j.call.Input)
		j.ctx.Release()
		e.running.Add(-1)

		e.mu.Lock()
		close(j.done)
		if j.abandoned {
			delete(e.late, j)
			e.abandoned.Add(-1)
			e.logger.Debug("abandoned call returned", "task", j.call.Name(), "run", j.call.RunID,
				"attempt", j.call.Attempt, "ran", time.Since(j.start), "error", j.err)
			e.putBackLocked(h) // its submitter has gone
		}
		e.mu.Unlock()
	}
	e.mu.Lock()
	e.live--
	if e.closed.Load() && e.live == 0 {
		close(e.drained)
	}
	e.mu.Unlock()
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
		close(h.jobs)
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
	for j := range e.late {
		running = append(running, j.call.String())
	}
	e.mu.Unlock()
	slices.Sort(running)
	return &executor.ShutdownError{Running: running, Err: ctx.Err()}
}

// Stats returns a snapshot of the counters.
func (e *Executor) Stats() executor.Stats {
	return executor.Stats{
		Submitted: e.submitted.Load(),
		Running:   e.running.Load(),
		Succeeded: e.succeeded.Load(),
		Failed:    e.failed.Load(),
		TimedOut:  e.timedOut.Load(),
		Canceled:  e.canceled.Load(),
		Abandoned: e.abandoned.Load(),
	}
}
