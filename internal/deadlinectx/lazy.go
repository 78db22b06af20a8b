package deadlinectx

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Lazy is a call's context with a deadline that the owner enforces by
// calling Expire, like Context, but its cancellation machinery (a
// context.WithCancelCause child of the parent) is made only when the task
// asks for Done or, once the context has ended, for a value: a call that
// never looks at its context's channel costs one 64-byte allocation, not
// the three of context.WithCancelCause plus a wrapper.
//
// It ends when its owner expires it (Err is context.DeadlineExceeded and
// context.Cause the cause given to Expire), when its parent ends (the
// parent's error and cause), or when the call returns and the owner
// releases it (context.Canceled), whichever comes first. Contexts derived
// from it see the same cause. It is safe for concurrent use.
type Lazy struct {
	parent   context.Context
	deadline time.Time

	made  atomic.Pointer[machinery] // set once, under mu
	ended atomic.Pointer[endCause]  // set once, by Expire or Release
	mu    sync.Mutex
}

type machinery struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

type endCause struct{ err error }

// released is why a context ends when its call returns.
var released = &endCause{err: context.Canceled}

// NewLazy returns a context derived from parent with the given deadline.
// If parent has an earlier deadline, Deadline reports that one (and the
// parent enforces it). Release must be called once the call has returned.
func NewLazy(parent context.Context, deadline time.Time) *Lazy {
	return &Lazy{parent: parent, deadline: deadline}
}

// Deadline returns the deadline, or the parent's if that is earlier; ok is
// always true.
func (c *Lazy) Deadline() (time.Time, bool) {
	if pd, ok := c.parent.Deadline(); ok && pd.Before(c.deadline) {
		return pd, true
	}
	return c.deadline, true
}

// Done returns a channel closed when the context ends.
func (c *Lazy) Done() <-chan struct{} { return c.materialize().Done() }

// Err returns nil while the context is live, context.DeadlineExceeded once
// the limit (or a parent's deadline) has passed, context.Canceled otherwise.
func (c *Lazy) Err() error {
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
func (c *Lazy) Value(key any) any {
	if c.made.Load() == nil && c.ended.Load() == nil {
		return c.parent.Value(key)
	}
	return c.materialize().Value(key)
}

// materialize returns the cancellation machinery, making it if needed.
func (c *Lazy) materialize() context.Context {
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

// Expire ends the context because the deadline passed, with cause as what
// context.Cause reports. cause must match context.DeadlineExceeded with
// errors.Is (an *executor.TimeoutError does). Expire after the context has
// ended does nothing. It runs no user code: functions registered with
// context.AfterFunc run on goroutines of their own.
func (c *Lazy) Expire(cause error) { c.end(&endCause{err: cause}) }

// Release ends the context after the call returned, freeing its
// resources. It does nothing if the context has already ended.
func (c *Lazy) Release() { c.end(released) }

func (c *Lazy) end(why *endCause) {
	if !c.ended.CompareAndSwap(nil, why) {
		return
	}
	if m := c.made.Load(); m != nil {
		m.cancel(why.err)
	}
}
