package pool

import (
	"context"
	"errors"
	"sync"
	"time"
)

// limitCtx is the context of a call with a limit. It reports its deadline
// like any context, but its cancellation machinery (a context.WithCancelCause
// child of the call's context) is made only when the task asks for Done or,
// once the context has ended, for a value: a call that never looks at its
// context's channel costs one small allocation, not a timer and three.
//
// It ends when the watchdog expires it (Err is context.DeadlineExceeded and
// context.Cause the *executor.TimeoutError), when its parent ends (the
// parent's error and cause), or when the call returns (context.Canceled),
// whichever comes first. Contexts derived from it see the same cause.
type limitCtx struct {
	parent   context.Context // the call context: identity, logger, the submitter's context
	deadline time.Time

	mu     sync.Mutex
	inner  context.Context         // nil until needed
	cancel context.CancelCauseFunc // cancels inner
	ended  error                   // why it ended, if it did before inner was made
}

func newLimitCtx(parent context.Context, deadline time.Time) *limitCtx {
	return &limitCtx{parent: parent, deadline: deadline}
}

// Deadline returns the call's deadline, or the parent's if that is earlier.
func (c *limitCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// Done returns a channel closed when the context ends.
func (c *limitCtx) Done() <-chan struct{} { return c.materialize().Done() }

// Err returns nil while the context is live, context.DeadlineExceeded once
// the limit (or a parent's deadline) has passed, context.Canceled otherwise.
func (c *limitCtx) Err() error {
	c.mu.Lock()
	inner, ended := c.inner, c.ended
	c.mu.Unlock()
	switch {
	case inner != nil:
		err := inner.Err()
		if err != nil && errors.Is(context.Cause(inner), context.DeadlineExceeded) {
			return context.DeadlineExceeded
		}
		return err
	case ended != nil:
		if errors.Is(ended, context.DeadlineExceeded) {
			return context.DeadlineExceeded
		}
		return context.Canceled
	}
	return c.parent.Err()
}

// Value looks key up. Before the context ends, a lookup through the parent
// is exact: until then this context's cause is its parent's. After, the
// cancellation machinery is made so that context.Cause, which looks up the
// standard library's own key, finds the cause.
func (c *limitCtx) Value(key any) any {
	c.mu.Lock()
	made, ended := c.inner != nil, c.ended != nil
	c.mu.Unlock()
	if !made && !ended {
		return c.parent.Value(key)
	}
	return c.materialize().Value(key)
}

// materialize returns the cancellation machinery, making it if needed.
func (c *limitCtx) materialize() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.cancel = context.WithCancelCause(c.parent)
		if c.ended != nil {
			// Nothing derives from inner yet: cancelling under the lock
			// calls nobody back.
			c.cancel(c.ended)
		}
	}
	return c.inner
}

// expire ends the context at its limit; cause must match
// context.DeadlineExceeded. It does nothing once the context has ended.
func (c *limitCtx) expire(cause error) { c.end(cause) }

// release ends the context once the call has returned.
func (c *limitCtx) release() { c.end(context.Canceled) }

func (c *limitCtx) end(cause error) {
	c.mu.Lock()
	if c.ended != nil {
		c.mu.Unlock()
		return
	}
	c.ended = cause
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}
