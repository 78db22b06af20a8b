package task_test

import (
	"context"
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
	for b.Loop() {
		r := task.NewRunner(spec, 1, opts)
		call := r.Start()
		r.AttemptDeliveries(call.Attempt, 0)
		r.AttemptDone(call.Attempt, 1, nil, "")
	}
}
