package flow

import (
	"context"
	"errors"
	"fmt"
)

// ErrHandedOver is the cause of the cancellation of a durable run that
// Serve hands over when its ctx ends: the run stops (running calls are
// cancelled through their context) without recording anything more — not
// its end, not the results of task runs that end meanwhile — and its lease
// is released, so that another process resumes it at once, as it would
// after a crash (the task runs in flight then run again). The Result that
// Serve reports for it is Cancelled, with an Err that matches
// ErrHandedOver and context.Canceled.
var ErrHandedOver = fmt.Errorf("flow: run handed over for another process to resume, its end not recorded: %w", context.Canceled)

// handedOver reports whether ctx, a durable run's, was cancelled to hand
// the run over.
func handedOver(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrHandedOver)
}

// handOver returns the context a run Serve drives runs with: it ends,
// with ErrHandedOver as its cause, when ctx ends. stop releases it.
func handOver(ctx context.Context) (rctx context.Context, stop func()) {
	rctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	unhook := context.AfterFunc(ctx, func() { cancel(ErrHandedOver) })
	return rctx, func() {
		unhook()
		cancel(nil)
	}
}
