package executor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// FutureSubmitter is implemented by in-process executors that can answer a
// call through a Future the caller owns, so that a scheduler submitting
// many calls reuses a few futures instead of allocating one per call (a
// flow run does: it needs each call's Future only until it has read the
// answer).
//
// SubmitFuture is TrySubmit (see TrySubmitter), with the same guarantees
// and errors, except that the call is answered by completing f instead of
// a new Future: it never waits for room, and where Submit would wait it
// fails at once with ErrQueueFull, so that a scheduler may submit from a
// goroutine of the executor's own (an OnDone callback). An executor that
// never waits for room has no ErrQueueFull to give. f must be pending and not given to any other call: the zero
// Future, or one made pending again with Reset. When SubmitFuture returns
// an error the call was not accepted and f is untouched. Otherwise f is
// completed exactly once, possibly before SubmitFuture returns, and the
// executor never reads or writes f after completing it (nor once its
// OnDone callbacks return), so its owner may Reset and reuse it as soon as
// it has seen it complete and read what it needs.
//
// A scheduler that finds SubmitFuture uses it instead of Submit, as
// io.Copy uses io.ReaderFrom: a type that wraps an executor by embedding it
// and changes Submit must change SubmitFuture too, or hide it (embed the
// executor as an executor.Executor, which has no SubmitFuture).
type FutureSubmitter interface {
	SubmitFuture(ctx context.Context, call Call, f *Future) error
}

// Reset makes a completed Future pending again, with no callbacks and no
// result, for its owner to give it to FutureSubmitter.SubmitFuture again.
// Only the Future's owner may call it, once the executor that completed it
// is done with it (see FutureSubmitter); a channel from an earlier Done
// stays closed. Reset on a pending Future that an executor holds is a
// programming error that loses its answer.
func (f *Future) Reset() {
	// Field by field, not *f = Future{}: zeroing a struct in the heap
	// whole goes through the bulk write barrier while the collector marks.
	f.state, f.deliveries, f.mu = atomic.Uint32{}, 0, sync.Mutex{}
	f.done, f.first, f.more = nil, nil, nil
	f.value, f.err, f.worker, f.started = nil, nil, "", 0
}

// PrepareFuture is Prepare for SubmitFuture: it returns f's Promise and
// the context to run call with, allocating only the context.
func PrepareFuture(parent context.Context, call *Call, f *Future) (Promise, context.Context) {
	c := allocCallContext(parent, call)
	return Promise{f: f}, c
}

// RunInlineFuture is RunInline for SubmitFuture: it runs call on the
// calling goroutine and completes f, allocating only the call's context.
// f must not be shared before it is complete, as RunInline's own Future
// is not, so no lock is taken.
func RunInlineFuture(parent context.Context, call *Call, f *Future) {
	c := allocCallContext(parent, call)
	if call.Trace != nil {
		Promise{f: f}.SetStarted(time.Now())
	}
	f.value, f.err = call.Handler.Run(c, call.Input)
	f.state.Store(futureDone)
}

// Forward completes f, a Future given to SubmitFuture, with the answer of
// src, a completed Future: its value, error, worker, deliveries and start.
// It is for an executor whose SubmitFuture falls back on Submit. It panics
// if src is pending.
func Forward(f *Future, src *Future) {
	if src.state.Load() != futureDone {
		panic("executor: Forward of a pending Future")
	}
	p := Promise{f: f}
	p.f.worker, p.f.deliveries, p.f.started = src.worker, src.deliveries, src.started
	p.Complete(src.value, src.err)
}
