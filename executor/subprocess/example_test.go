//go:build linux

package subprocess_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

// double is the example's task. The workers know it because TestMain
// passes a registry holding it to subprocess.ServeIfWorker, as a
// program's main does.
var double = executor.NewHandler("example.double", func(ctx context.Context, n int) (int, error) {
	return 2 * n, nil
}, nil)

func Example() {
	// First thing in main (here, in TestMain):
	//	subprocess.ServeIfWorker(registry)
	ex, err := subprocess.New(subprocess.Options{Workers: 1})
	if err != nil { // an *UnsupportedError: this OS cannot keep what the Options ask
		fmt.Println(err)
		return
	}
	defer ex.Shutdown(context.Background())

	v, err := executor.Run(context.Background(), ex, executor.Call{Handler: double, Input: 21, Limit: time.Second})
	fmt.Println(v, err)
	// Output: 42 <nil>
}

func ExampleExecutor_Submit_timeout() {
	ex, err := subprocess.New(subprocess.Options{Workers: 1, Grace: 100 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ex.Shutdown(context.Background())

	// The task sleeps for an hour and ignores its context: only the kill
	// stops it.
	f, err := ex.Submit(context.Background(), executor.Call{
		Handler: executortest.Sleep,
		Input:   executortest.Args{Sleep: time.Hour},
		Limit:   100 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	_, err = f.Wait(context.Background())
	var te *executor.TimeoutError
	fmt.Println(errors.Is(err, executor.ErrTimeout), errors.As(err, &te))
	fmt.Println(te.Enforcement, "stopped:", te.Stopped)
	// Output:
	// true true
	// hard stopped: true
}
