package pool_test

import (
	"context"
	"testing"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/pool"
)

var noop = executor.NewHandler("noop", func(context.Context, struct{}) (struct{}, error) {
	return struct{}{}, nil
}, nil)

// benchPool measures one call submitted by one goroutine and run by
// GOMAXPROCS workers, Shutdown included.
func benchPool(b *testing.B, limit time.Duration, future bool) {
	ex := pool.New(pool.Options{})
	ctx := context.Background()
	call := executor.Call{Handler: noop, RunID: "bench", Limit: limit}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
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
	if err := ex.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkGo(b *testing.B)          { benchPool(b, 0, false) }
func BenchmarkGoLimit(b *testing.B)     { benchPool(b, time.Second, false) }
func BenchmarkSubmit(b *testing.B)      { benchPool(b, 0, true) }
func BenchmarkSubmitLimit(b *testing.B) { benchPool(b, time.Second, true) }
