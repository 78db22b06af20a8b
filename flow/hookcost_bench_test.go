package flow_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// hookFlow is a mapped node of 1,000 trivial children: a run is 1,000
// attempts, so ns/attempt is the scheduler's and the runner's cost per
// attempt, the path the observer hook sits on.
func hookFlow(b *testing.B) *flow.Flow {
	id := task.New("id", func(ctx context.Context, n int) (int, error) { return n, nil }, task.Options{})
	fb := flow.New("hookcost", flow.Options{})
	flow.Map(fb, id, flow.Const(make([]int, 1000)))
	f, err := fb.Build()
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkAttemptNoObserver measures a flow run's cost per attempt with
// no observer. It only uses API that existed before the observer hook, so
// that the same file run on the commit before the hook measures the same
// path without it (docs/observability.md gives the commands and numbers).
func BenchmarkAttemptNoObserver(b *testing.B) {
	for _, ex := range []struct {
		name string
		new  func() executor.Executor
	}{
		{"local", func() executor.Executor { return local.New(local.Options{}) }},
		{"pool", func() executor.Executor { return pool.New(pool.Options{Workers: 2}) }},
	} {
		b.Run(ex.name, func(b *testing.B) {
			f := hookFlow(b)
			e := ex.new()
			defer e.Shutdown(context.Background())
			runHookFlow(b, f, e, flow.RunOptions{})
		})
	}
}

func runHookFlow(b *testing.B, f *flow.Flow, e executor.Executor, opts flow.RunOptions) {
	b.ReportAllocs()
	// The run's loop on its own thread, whose CPU time is reported too
	// (cpu-ns/attempt; on executor/local that is all of a run's work but
	// the garbage collector's): on a shared machine the wall time also
	// holds the time spent descheduled.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, ok := threadCPU()
	for b.Loop() {
		if _, err := f.Run(context.Background(), e, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/attempt")
	if cpu1, ok1 := threadCPU(); ok && ok1 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N*1000), "cpu-ns/attempt")
	}
}
