package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// limitCtx is the context of a call with a limit. It reports its deadline
// like any context, but its cancellation machinery (a context.WithCancelCause
// child of the call's context) is made only when the task asks for Done or,
// once the context has ended, for a value: a call that never looks at its
// context's channel costs one 64-byte allocation, not a timer and three
// allocations.
//
// It ends when the watchdog expires it (Err is context.DeadlineExceeded and
// context.Cause the *executor.TimeoutError), when its parent ends (the
// parent's error and cause), or when the call returns (context.Canceled),
// whichever comes first. Contexts derived from it see the same cause.
type limitCtx struct {
	parent   context.Context // the call context: identity, logger, the submitter's context
	e        *Executor       // for its epoch
	deadline int64           // ns since the executor's epoch

	made  atomic.Pointer[machinery] // set once, under mu
	ended atomic.Pointer[endCause]  // set once, by expire or release
	mu    sync.Mutex
}

type machinery struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

type endCause struct{ err error }

// released is why a context ends when its call returns.
var released = &endCause{err: context.Canceled}

func newLimitCtx(parent context.Context, e *Executor, deadline int64) *limitCtx {
	return &limitCtx{parent: parent, e: e, deadline: deadline}
}

// Deadline returns the call's deadline, or the parent's if that is earlier.
func (c *limitCtx) Deadline() (time.Time, bool) {
	d := c.e.epoch.Add(time.Duration(c.deadline))
	if pd, ok := c.parent.Deadline(); ok && pd.Before(d) {
		return pd, true
	}
	return d, true
}

// Done returns a channel closed when the context ends.
func (c *limitCtx) Done() <-chan struct{} { return c.materialize().Done() }

// Err returns nil while the context is live, context.DeadlineExceeded once
// the limit (or a parent's deadline) has passed, context.Canceled otherwise.
func (c *limitCtx) Err() error {
	if e := c.ended.Load(); e != nil {
		if errors.Is(e.err, context.DeadlineExceeded) {
			return context.DeadlineExceeded
		}
		return context.Canceled
	}
	if m := c.made.Load(); m != nil {
		err := m.ctx.Err()
		if err != nil && errors.Is(context.Cause(m.ctx), context.DeadlineExceeded) {
			return context.DeadlineExceeded
		}
		return err
	}
	return c.parent.Err()
}

// Value looks key up. Before the context ends, a lookup through the parent
// is exact: until then this context's cause is its parent's. After, the
// cancellation machinery is made so that context.Cause, which looks up the
// standard library's own key, finds the cause.
func (c *limitCtx) Value(key any) any {
	if c.made.Load() == nil && c.ended.Load() == nil {
		return c.parent.Value(key)
	}
	return c.materialize().Value(key)
}

// materialize returns the cancellation machinery, making it if needed.
func (c *limitCtx) materialize() context.Context {
	if m := c.made.Load(); m != nil {
		return m.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.made.Load()
	if m == nil {
		ctx, cancel := context.WithCancelCause(c.parent)
		m = &machinery{ctx: ctx, cancel: cancel}
		c.made.Store(m)
		// end stores ended before it loads made, and we store made before
		// loading ended: one of the two sees the other and cancels.
		if e := c.ended.Load(); e != nil {
			cancel(e.err)
		}
	}
	return m.ctx
}

// expire ends the context at its limit; cause must match
// context.DeadlineExceeded. It does nothing once the context has ended.
func (c *limitCtx) expire(cause error) { c.end(&endCause{err: cause}) }

// release ends the context once the call has returned.
func (c *limitCtx) release() { c.end(released) }

func (c *limitCtx) end(why *endCause) {
	if !c.ended.CompareAndSwap(nil, why) {
		return
	}
	if m := c.made.Load(); m != nil {
		m.cancel(why.err)
	}
}
