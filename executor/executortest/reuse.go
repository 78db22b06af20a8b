package executortest

import (
	"context"
	"fmt"

	"github.com/flowline-go/flowline/executor"
)

// ThroughSubmitFuture returns ex with its Submit answered by its
// SubmitFuture (executor.FutureSubmitter), each call through a Future of
// its own, so that Run and Stress check SubmitFuture with the suite's
// checks: set Config.New to a function that wraps the executor with it.
// The wrapper offers no TrySubmit. It panics if ex is not an
// executor.FutureSubmitter.
func ThroughSubmitFuture(ex executor.Executor) executor.Executor {
	fs, ok := ex.(executor.FutureSubmitter)
	if !ok {
		panic(fmt.Sprintf("executortest: ThroughSubmitFuture of a %T, which is not an executor.FutureSubmitter", ex))
	}
	return &throughFuture{Executor: ex, fs: fs}
}

type throughFuture struct {
	executor.Executor
	fs executor.FutureSubmitter
}

func (t *throughFuture) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	f := &executor.Future{}
	if err := t.fs.SubmitFuture(ctx, call, f); err != nil {
		if _, _, done := f.Result(); done {
			panic("executortest: SubmitFuture failed and completed its Future")
		}
		return nil, err
	}
	return f, nil
}
