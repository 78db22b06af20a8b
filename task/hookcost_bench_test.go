package task_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/flowline-go/flowline/task"
)

// BenchmarkRunnerAttemptNoObserver is one task run of one attempt through
// the Runner, without an executor: the part of an attempt's cost that the
// observer hook adds nil checks to. It uses only API that existed before
// the hook, so the same file measures the commit before it (see
// docs/observability.md).
func BenchmarkRunnerAttemptNoObserver(b *testing.B) {
	spec := task.New("t", func(ctx context.Context, n int) (int, error) { return n, nil }, task.Options{})
	opts := task.RunOptions{RunID: "r", Label: "t"}
	b.ReportAllocs()
	// On its own thread, whose CPU time is reported too (cpu-ns/op): on a
	// shared machine the wall time also holds the time spent descheduled.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, ok := threadCPU()
	for b.Loop() {
		r := task.NewRunner(spec, 1, opts)
		call := r.Start()
		r.AttemptDeliveries(call.Attempt, 0)
		r.AttemptDone(call.Attempt, 1, nil, "")
	}
	if cpu1, ok1 := threadCPU(); ok && ok1 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}
