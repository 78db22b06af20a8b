package local_test

import (
	"context"
	"testing"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
)

func noop(ctx context.Context, n int) (int, error) { return n, nil }

var sink int

// BenchmarkCall compares one call made directly with the same call made
// through the local executor, without a limit and with a limit that never
// fires. The overhead is the difference to Direct. cpu-ns/op is the CPU
// time of the whole process per call (every goroutine and the runtime's
// own threads), which shows what a hand-off's spinning or wake-ups cost
// besides the caller's time.
//
//	go test -run '^$' -bench Call -benchmem -count 6 ./executor/local
func BenchmarkCall(b *testing.B) {
	ctx := context.Background()
	h := executor.NewHandler("noop", noop, nil)
	b.Run("Direct", func(b *testing.B) {
		fn := noop
		for i := range b.N {
			v, _ := fn(ctx, i)
			sink += v
		}
	})
	b.Run("Handler", func(b *testing.B) {
		for i := range b.N {
			v, _ := h.Run(ctx, i&0xff)
			sink += v.(int)
		}
	})
	for _, bc := range []struct {
		name  string
		limit time.Duration
	}{{"LocalNoLimit", 0}, {"LocalLimitNeverFires", time.Second}} {
		b.Run(bc.name, func(b *testing.B) {
			ex := local.New(local.Options{})
			defer ex.Shutdown(ctx)
			call := executor.Call{Handler: h, Limit: bc.limit}
			b.ReportAllocs()
			cpu0, cpuOK := processCPU()
			for i := range b.N {
				call.Input = i & 0xff // small ints do not allocate when boxed
				f, err := ex.Submit(ctx, call)
				if err != nil {
					b.Fatal(err)
				}
				v, _, _ := f.Result()
				sink += v.(int)
			}
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
