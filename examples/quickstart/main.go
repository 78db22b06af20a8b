// Command quickstart is flowline's first demo: one task with a time limit
// and retries, run on the local executor. Its first attempt overruns the
// limit, its second fails, its third succeeds; the report says what
// happened to each.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/task"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run() error {
	attempt := 0
	shout := task.New("shout", func(ctx context.Context, s string) (string, error) {
		attempt++
		switch attempt {
		case 1: // too slow: the 100ms limit cancels the context
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return "", context.Cause(ctx)
			}
		case 2:
			return "", errors.New("flaky network")
		}
		return strings.ToUpper(s) + "!", nil
	}, task.Options{Timeout: 100 * time.Millisecond, MaxRetries: 2, RetryDelay: 50 * time.Millisecond})

	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())

	out, res := shout.Run(context.Background(), ex, "hello, flowline", task.RunOptions{})
	for _, a := range res.Attempts {
		outcome := "ok"
		if a.Err != nil {
			outcome = a.Err.Error()
		}
		fmt.Printf("attempt %d: %-8v %s\n", a.N, a.End.Sub(a.Start).Round(time.Millisecond), outcome)
	}
	fmt.Printf("%s: %v after %d attempts -> %q\n", res.Task, res.State, len(res.Attempts), out)
	if res.State != task.Success {
		return fmt.Errorf("expected success, got %v: %v", res.State, res.Err)
	}
	return nil
}
