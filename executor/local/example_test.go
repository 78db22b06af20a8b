package local_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
)

// A call without a limit runs on the caller's goroutine; one with a limit
// is answered at the limit, and a task that ignores its context is
// abandoned, counted, and waited for by Shutdown.
func Example() {
	stubborn := executor.NewHandler("stubborn", func(ctx context.Context, d time.Duration) (string, error) {
		time.Sleep(d) // ignores ctx
		return "done", nil
	}, nil)

	ex := local.New(local.Options{})

	out, err := executor.Run(context.Background(), ex, executor.Call{Handler: stubborn, Input: time.Millisecond})
	fmt.Println(out, err)

	_, err = executor.Run(context.Background(), ex, executor.Call{Handler: stubborn, Input: 200 * time.Millisecond, Limit: 10 * time.Millisecond})
	var te *executor.TimeoutError
	if errors.As(err, &te) {
		fmt.Println("timed out:", te.Enforcement, "stopped:", te.Stopped, "abandoned:", ex.Stats().Abandoned)
	}

	fmt.Println("shutdown:", ex.Shutdown(context.Background()), "abandoned:", ex.Stats().Abandoned)
	// Output:
	// done <nil>
	// timed out: soft stopped: false abandoned: 1
	// shutdown: <nil> abandoned: 0
}
