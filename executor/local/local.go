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
	live    int                  // helper goroutines alive
	late    map[*helper]struct{} // helpers running abandoned calls
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
	e.stats.Submitted.Add(1)
	if ctx.Err() != nil {
		err := executor.NewCanceledError(call.Name(), ctx)
		e.stats.Ended(err)
		return executor.Completed(nil, err), nil
	}
	if call.Limit <= 0 {
		e.stats.Running.Add(1)
		f := executor.RunInline(ctx, &call)
		e.stats.Running.Add(-1)
		_, err, _ := f.Result()
		e.stats.Ended(err)
		return f, nil
	}
	return e.runLimited(ctx, call)
}

// helper is a goroutine that runs limited calls one at a time, kept warm so
// that a limit costs a hand-off, not a goroutine start. Its fields describe
// the call it runs; they are reused from call to call, so a limited call
// allocates only what the task can keep (its context and its Future).
type helper struct {
	start chan struct{} // a call is ready in the fields below
	done  chan struct{} // size 1: the call returned and its submitter waits
	timer *time.Timer

	call  executor.Call
	ctx   *deadlinectx.Context
	began time.Time
	value any
	err   error

	// finished and abandoned are guarded by Executor.mu: the helper sets
	// finished when the call returns, the submitter sets abandoned when it
	// stops waiting; whichever comes second knows what the other did.
	finished, abandoned bool
}

func (e *Executor) runLimited(ctx context.Context, call executor.Call) (*executor.Future, error) {
	h := e.takeHelper()
	if h == nil { // Shutdown began after Submit's check: not accepted after all
		e.stats.Submitted.Add(^uint64(0))
		return nil, executor.ErrClosed
	}
	h.began = time.Now()
	h.call = call
	h.ctx = deadlinectx.New(executor.WithCall(ctx, &h.call), h.began.Add(call.Limit))
	h.finished, h.abandoned = false, false
	e.stats.Running.Add(1)
	h.timer.Reset(call.Limit)
	h.start <- struct{}{}

	select {
	case <-h.done:
		return e.collect(h), nil
	case <-h.timer.C:
		terr := &executor.TimeoutError{
			Task:        call.Name(),
			Limit:       call.Limit,
			Elapsed:     time.Since(h.began),
			Enforcement: executor.Soft,
		}
		if e.abandon(h, "timed out") {
			e.stats.Ended(terr)
			h.ctx.Expire(terr)
			return executor.Completed(nil, terr), nil
		}
	case <-ctx.Done():
		if e.abandon(h, "cancelled") {
			err := executor.NewCanceledError(call.Name(), ctx)
			e.stats.Ended(err)
			return executor.Completed(nil, err), nil
		}
	}
	// The call returned while we decided to give up on it: its result wins.
	<-h.done
	return e.collect(h), nil
}

// collect takes the result of a call that returned in time and makes its
// helper idle again.
func (e *Executor) collect(h *helper) *executor.Future {
	h.timer.Stop()
	v, err := h.value, h.err
	h.call, h.ctx, h.value, h.err = executor.Call{}, nil, nil, nil
	e.stats.Ended(err)
	e.putBack(h)
	return executor.Completed(v, err)
}

// abandon marks h's call as abandoned unless it has already returned, and
// reports whether it did.
func (e *Executor) abandon(h *helper, why string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if h.finished {
		return false
	}
	h.abandoned = true
	e.late[h] = struct{}{}
	e.stats.Abandoned.Add(1)
	e.logger.Warn("call abandoned; it may still be running",
		"why", why, "task", h.call.Name(), "run", h.call.RunID, "attempt", h.call.Attempt,
		"ran", time.Since(h.began), "limit", h.call.Limit)
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
	h := &helper{start: make(chan struct{}), done: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
	h.timer.Stop()
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

// serve runs calls until its start channel is closed.
func (e *Executor) serve(h *helper) {
	for range h.start {
		h.value, h.err = h.call.Handler.Run(h.ctx, h.call.Input)
		h.ctx.Release()
		e.stats.Running.Add(-1)

		e.mu.Lock()
		h.finished = true
		if !h.abandoned {
			h.done <- struct{}{} // never blocks: size 1, one call at a time
			e.mu.Unlock()
			continue
		}
		delete(e.late, h)
		e.stats.Abandoned.Add(-1)
		e.logger.Debug("abandoned call returned", "task", h.call.Name(), "run", h.call.RunID,
			"attempt", h.call.Attempt, "ran", time.Since(h.began), "error", h.err)
		h.call, h.ctx, h.value, h.err = executor.Call{}, nil, nil, nil
		e.putBackLocked(h) // its submitter has gone
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
