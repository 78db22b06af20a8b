// Package deadlinectx gives a call a context that carries its deadline and
// whose expiry is driven by the executor's own timer, not by one runtime
// timer per call. Soft executors use it so that a limit that never fires
// costs little, while the task still sees a normal context: Deadline
// reports the limit, Done closes at expiry, Err is
// context.DeadlineExceeded, and context.Cause is the executor's
// *executor.TimeoutError.
package deadlinectx

import (
	"context"
	"errors"
	"time"

	"github.com/flowline-go/flowline/executor"
)

// Context is a call's context with a deadline that the owner enforces by
// calling Expire. It is safe for concurrent use. Contexts derived from it
// with context.WithCancel and friends are cancelled with it and report the
// same cause; their Err is context.Canceled, as the standard library
// reports for any parent cancelled with a cause.
type Context struct {
	context.Context // a cancel-with-cause child of the parent
	cancel          context.CancelCauseFunc
	deadline        time.Time
}

// New returns a context derived from parent with the given deadline. If
// parent has an earlier deadline, Deadline reports that one (and the parent
// enforces it). Release must be called once the call has returned.
func New(parent context.Context, deadline time.Time) *Context {
	inner, cancel := context.WithCancelCause(parent)
	if d, ok := parent.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return &Context{Context: inner, cancel: cancel, deadline: deadline}
}

// Deadline returns the deadline; ok is always true.
func (c *Context) Deadline() (time.Time, bool) { return c.deadline, true }

// Err returns nil while the context is live, context.DeadlineExceeded once
// it has expired (by Expire, or by a parent deadline), and context.Canceled
// once the parent was cancelled or Release was called.
func (c *Context) Err() error {
	err := c.Context.Err()
	if err != nil && errors.Is(context.Cause(c.Context), context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

// Expire ends the context because the deadline passed, with cause as what
// context.Cause reports. cause must match context.DeadlineExceeded with
// errors.Is (an *executor.TimeoutError does). Expire after the context has
// ended does nothing.
func (c *Context) Expire(cause error) { c.cancel(cause) }

// Release ends the context after the call returned, freeing its resources.
// It does nothing if the context has already ended.
func (c *Context) Release() { c.cancel(context.Canceled) }

// Late applies the one rule for late results (see executor.TimeoutHandler)
// to a call of task with limit that started at start and whose return the
// executor observed at observed, both read from the executor's clock: the
// call is late if limit > 0 and observed is not before start + limit. Late
// returns the *executor.TimeoutError to answer the call with then, with
// Stopped set since the work has returned, and nil for a call on time or
// without a limit. Every executor calls it with the moment its own code
// saw the result, before anything else may answer the call, so that the
// rule gives the same verdict whichever of the result and the timer
// arrives first.
func Late(task string, limit time.Duration, start, observed time.Time, enf executor.Enforcement) *executor.TimeoutError {
	if limit <= 0 || observed.Before(start.Add(limit)) {
		return nil
	}
	return &executor.TimeoutError{Task: task, Limit: limit, Elapsed: observed.Sub(start), Enforcement: enf, Stopped: true}
}

// CallerEnded returns the answer for a call of task whose work returned
// err, when the submitter's context ctx may have ended meanwhile: if ctx
// has ended and err is ctx's own error (the task gave up because its
// caller did, typically by returning ctx.Err() after the caller's
// deadline), the call was cancelled, and CallerEnded returns the
// *executor.CanceledError for it; otherwise it returns err unchanged. It
// keeps a caller's deadline from reading as the task's failure now that a
// bare context.DeadlineExceeded is one (executor.ClassOf).
func CallerEnded(task string, ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		return err
	}
	var ce *executor.CanceledError
	var te *executor.TimeoutError
	if errors.As(err, &ce) || errors.As(err, &te) {
		return err
	}
	return executor.NewCanceledError(task, ctx)
}
