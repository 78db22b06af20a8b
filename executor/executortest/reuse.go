package executortest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/executor"
)

// ThroughSubmitFuture returns ex with its Submit answered by its
// SubmitFuture (executor.FutureSubmitter), each call through a Future of
// its own, so that Run and Stress check SubmitFuture with the suite's
// checks: set Config.New to a function that wraps the executor with it.
// Its TrySubmit is one SubmitFuture; its Submit tries again every
// millisecond while that finds no room. It panics if ex is not an
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

// Submit waits for room as the contract's Submit does, trying again every
// millisecond while SubmitFuture finds none.
func (t *throughFuture) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	for {
		f, err := t.TrySubmit(ctx, call)
		if !errors.Is(err, executor.ErrQueueFull) {
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
			if err := ctx.Err(); err != nil {
				return nil, err // it ended while Submit waited
			}
		}
	}
}

// TrySubmit is SubmitFuture with a Future of its own.
func (t *throughFuture) TrySubmit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	f := &executor.Future{}
	if err := t.fs.SubmitFuture(ctx, call, f); err != nil {
		if _, _, done := f.Result(); done {
			panic("executortest: SubmitFuture failed and completed its Future")
		}
		return nil, err
	}
	return f, nil
}
