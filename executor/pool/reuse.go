package pool

import (
	"context"
	"errors"

	"github.com/flowline-go/flowline/executor"
)

var _ executor.FutureSubmitter = (*Executor)(nil)

// SubmitFuture is TrySubmit answering through f, a pending Future the
// caller owns (see executor.FutureSubmitter): it fails exactly as TrySubmit
// does (executor.ErrQueueFull when there is no room), leaving f untouched
// when it fails, and allocates only the call's context (plus, as Submit,
// its cancellation ticket when ctx can be cancelled). Once the call is
// answered the pool no longer touches f.
func (e *Executor) SubmitFuture(ctx context.Context, call executor.Call, f *executor.Future) error {
	if call.Handler == nil {
		return errors.New("executor/pool: Submit with a nil Handler")
	}
	if err := e.admit(); err != nil {
		return err
	}
	p, cctx := executor.PrepareFuture(ctx, &call, f)
	j := job{call: call, ctx: ctx, cctx: cctx, promise: p}
	return e.enqueue(ctx, &j, false)
}
