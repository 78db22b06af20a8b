package local

import (
	"context"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/internal/deadlinectx"
)

var _ executor.FutureSubmitter = (*Executor)(nil)

// SubmitFuture is Submit answering through f, a pending Future the caller
// owns (see executor.FutureSubmitter): f is complete when SubmitFuture
// returns nil, and untouched when it returns an error. A call without a
// limit, on a context that has not ended, allocates only its context.
func (e *Executor) SubmitFuture(ctx context.Context, call executor.Call, f *executor.Future) error {
	if call.Limit > 0 || call.Handler == nil || e.closed.Load() || ctx.Err() != nil {
		src, err := e.Submit(ctx, call)
		if err != nil {
			return err
		}
		executor.Forward(f, src)
		return nil
	}
	e.stats.Submitted.Add(1)
	e.stats.Running.Add(1)
	returned := false
	defer func() {
		if !returned {
			e.goexited(&call) // see runInline
		}
	}()
	executor.RunInlineFuture(ctx, &call, f)
	returned = true
	e.stats.Running.Add(-1)
	_, err, _ := f.Result()
	if cerr := deadlinectx.CallerEnded(call.Name(), ctx, err); cerr != err {
		// the task gave up because its caller did: answer as Submit does
		started := f.Started()
		f.Reset()
		executor.Forward(f, completed(nil, cerr, call.Trace != nil, started))
		err = cerr
	}
	e.stats.Ended(err)
	return nil
}
