package pool_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/pool"
)

func Example() {
	ex := pool.New(pool.Options{Workers: 4})
	defer ex.Shutdown(context.Background())

	square := executor.NewHandler("square", func(ctx context.Context, n int) (int, error) {
		return n * n, nil
	}, nil)
	var futures []*executor.Future
	for n := 1; n <= 3; n++ {
		f, err := ex.Submit(context.Background(), executor.Call{Handler: square, Input: n})
		if err != nil {
			panic(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		v, err := f.Wait(context.Background())
		fmt.Println(v, err)
	}

	// A task that overruns its limit: the caller gets a TimeoutError at the
	// limit, and the task's context says why it ended.
	slow := executor.NewHandler("slow", func(ctx context.Context, _ struct{}) (string, error) {
		<-ctx.Done()
		return "", context.Cause(ctx)
	}, nil)
	_, err := executor.Run(context.Background(), ex, executor.Call{Handler: slow, Limit: 10 * time.Millisecond})
	var te *executor.TimeoutError
	fmt.Println(errors.Is(err, executor.ErrTimeout), errors.As(err, &te) && te.Limit == 10*time.Millisecond)
	// Output:
	// 1 <nil>
	// 4 <nil>
	// 9 <nil>
	// true true
}
