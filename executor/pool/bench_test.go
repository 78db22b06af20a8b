package pool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/pool"
)

// benchPool measures one no-op call submitted by one goroutine and run by
// GOMAXPROCS workers. The task marks a WaitGroup so that every call has
// run before the pool is shut down (Shutdown would cancel queued calls).
// bench/cmd/poolbench compares the same with other pools.
func benchPool(b *testing.B, limit time.Duration, future bool) {
	var wg sync.WaitGroup
	h := executor.NewHandler("noop", func(context.Context, struct{}) (struct{}, error) {
		wg.Done()
		return struct{}{}, nil
	}, nil)
	ex := pool.New(pool.Options{})
	ctx := context.Background()
	call := executor.Call{Handler: h, RunID: "bench", Limit: limit}
	b.ReportAllocs()
	for b.Loop() {
		wg.Add(1)
		var err error
		if future {
			_, err = ex.Submit(ctx, call)
		} else {
			err = ex.Go(ctx, call)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	if err := ex.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkGo(b *testing.B)          { benchPool(b, 0, false) }
func BenchmarkGoLimit(b *testing.B)     { benchPool(b, time.Second, false) }
func BenchmarkSubmit(b *testing.B)      { benchPool(b, 0, true) }
func BenchmarkSubmitLimit(b *testing.B) { benchPool(b, time.Second, true) }
