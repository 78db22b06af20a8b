package task_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/task"
)

// A task with a time limit and retries, run once on the local executor.
func ExampleTask_Run() {
	attempts := 0
	fetch := task.New("fetch", func(ctx context.Context, url string) (int, error) {
		attempts++
		if attempts < 3 {
			return 0, errors.New("connection reset") // retried
		}
		return len(url), nil
	}, task.Options{Timeout: time.Second, MaxRetries: 3})

	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())

	n, res := fetch.Run(context.Background(), ex, "https://example.org", task.RunOptions{})
	fmt.Println(n, res.State, len(res.Attempts))
	// Output: 19 Success 3
}

// Task code ends its run early with signals: Skip is not a failure, Fail
// is a failure that is not retried.
func ExampleSkip() {
	load := task.New("load", func(ctx context.Context, rows []string) (int, error) {
		if len(rows) == 0 {
			return 0, task.Skip("nothing to load")
		}
		return len(rows), nil
	}, task.Options{MaxRetries: 5})

	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())

	_, res := load.Run(context.Background(), ex, nil, task.RunOptions{})
	fmt.Println(res.State, len(res.Attempts), res.Err)
	// Output: Skipped 1 task: skipped: nothing to load
}
