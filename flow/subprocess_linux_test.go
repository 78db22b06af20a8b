//go:build linux

package flow_test

// The flow tests on the subprocess executor run on Linux, where its
// mechanics are tested; on macOS and Windows the executor is cross-compiled
// and vetted (see docs/executors.md, Operating systems).

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor/subprocess"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/flow/flowtest"
	"github.com/flowline-go/flowline/task"
)

// serveIfWorker makes this test binary a subprocess worker when it was
// started as one, serving the tasks flowtest.CheckStop runs and the
// proc.* tasks.
func serveIfWorker() {
	reg := flowtest.Registry()
	for _, t := range []task.Spec{procDouble, procSum} {
		if err := reg.Register(t.Handler()); err != nil {
			panic(err)
		}
	}
	subprocess.ServeIfWorker(reg)
}

// Tasks that run in the subprocess executor's workers, so registered in
// serveIfWorker.
var (
	procDouble = task.New("proc.double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil }, task.Options{})
	procSum    = task.New("proc.sum", func(ctx context.Context, ns []int) (int, error) {
		t := 0
		for _, n := range ns {
			t += n
		}
		return t, nil
	}, task.Options{})
)

// TestStopOnAHardExecutor stops a flow whose running calls ignore their
// context, on worker processes: they are killed, and dead when Run
// returns.
func TestStopOnAHardExecutor(t *testing.T) {
	ex, err := subprocess.New(subprocess.Options{Workers: 2, Grace: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, ex.Shutdown(context.Background())) })
	flowtest.CheckStop(t, ex, flowtest.Options{Limit: 500 * time.Millisecond})
}

// TestRunsInWorkerProcesses runs a flow whose values cross a process
// boundary both ways.
func TestRunsInWorkerProcesses(t *testing.T) {
	ex, err := subprocess.New(subprocess.Options{Workers: 2})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, ex.Shutdown(context.Background())) })
	b := flow.New("procs", flow.Options{})
	doubled := flow.Map(b, procDouble, flow.Const([]int{1, 2, 3}))
	total := flow.Add(b, procSum, doubled)
	f, err := b.Build()
	require.NoError(t, err)

	res, err := f.Run(context.Background(), ex, flow.RunOptions{})
	require.NoError(t, err)
	d, _ := flow.Value(res, doubled)
	assert.Equal(t, []int{2, 4, 6}, d)
	v, _ := flow.Value(res, total)
	assert.Equal(t, 12, v)
	tr, _ := res.Task("proc.double[2]")
	require.Len(t, tr.Attempts, 1)
	assert.NotEmpty(t, tr.Attempts[0].Worker, "the worker that ran it is recorded")
}
