package task_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/flowline-go/flowline/task"
)

// BenchmarkRunnerReset is the task runner's share of a flow's task run:
// one Runner reset for each run (Runner.Reset), its first attempt recorded
// in a slab made for 1,024 runs at a time, one attempt, and the record
// taken, as the flow package drives it; no executor. Together with
// BenchmarkAttemptClocks it splits a flow task's cost (see "What the graph
// adds" in docs/benchmarks.md).
//
//	go test -run '^$' -bench 'RunnerReset|AttemptClocks' -benchmem ./task
func BenchmarkRunnerReset(b *testing.B) {
	spec := task.New("t", func(ctx context.Context, n int) (int, error) { return n, nil }, task.Options{})
	r := task.NewRunner(spec, nil, task.RunOptions{RunID: "r", Label: "t"})
	const slab = 1024
	var attempts []task.Attempt
	recs := make([]task.Result, slab)
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, ok := threadCPU()
	i := 0
	for b.Loop() {
		if len(attempts) == 0 {
			attempts = make([]task.Attempt, slab)
		}
		r.Reset(spec, 1, task.RunOptions{RunID: "r", Label: "t", Attempts: attempts[:0:1]})
		attempts = attempts[1:]
		call := r.Start()
		if _, again := r.AttemptDone(call.Attempt, 1, nil, ""); again {
			b.Fatal("a successful attempt asked for another")
		}
		recs[i%slab] = r.Take()
		i++
	}
	if cpu1, ok1 := threadCPU(); ok && ok1 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
	if recs[0].State != task.Success {
		b.Fatalf("state %v, want Success", recs[0].State)
	}
}

// BenchmarkAttemptClocks is the two clock reads a task attempt makes (its
// start and its end, time.Now each): the part of BenchmarkRunnerReset
// that is the machine's clock, not the runner's bookkeeping.
func BenchmarkAttemptClocks(b *testing.B) {
	var start, end time.Time
	for b.Loop() {
		start = time.Now()
		end = time.Now()
	}
	if end.Before(start) {
		b.Fatal("the clock went back")
	}
}
