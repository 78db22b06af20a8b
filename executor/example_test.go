package executor_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
)

// One call under a limit, with no flow to build: the contract on its own.
func ExampleRun() {
	slow := executor.NewHandler("slow", func(ctx context.Context, d time.Duration) (string, error) {
		select {
		case <-time.After(d):
			return "done", nil
		case <-ctx.Done(): // context.Cause(ctx) is the *executor.TimeoutError
			return "", ctx.Err()
		}
	}, nil)

	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())

	out, err := executor.Run(context.Background(), ex, executor.Call{Handler: slow, Input: time.Millisecond, Limit: time.Second})
	fmt.Println(out, err)

	_, err = executor.Run(context.Background(), ex, executor.Call{Handler: slow, Input: time.Hour, Limit: 10 * time.Millisecond})
	var te *executor.TimeoutError
	if errors.As(err, &te) {
		fmt.Println(te.Task, te.Limit, te.Enforcement, errors.Is(err, executor.ErrTimeout))
	}
	// Output:
	// done <nil>
	// slow 10ms soft true
}
