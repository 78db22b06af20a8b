// Package flowtest checks, for any executor, what the flow package
// promises when a run is stopped: running calls are cancelled (killed on a
// hard executor), tasks that never started end Cancelled, and Run returns
// with every task final. Executor packages call CheckStop from their
// tests; out-of-process executors must serve Registry in their workers.
package flowtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/internal/procgroup"
	"github.com/flowline-go/flowline/task"
)

// Args is the input of the package's tasks.
type Args struct {
	Sleep       time.Duration // how long Sleep works
	Cooperative bool          // whether Sleep returns when its context ends
	PIDFile     string        // where Sleep writes its process id before it sleeps; empty for none
}

// The package's tasks. They are package variables so that a worker process
// re-executed from a test binary has them too; Registry registers them.
var (
	// Quick returns its input at once.
	Quick = task.New("flowtest.quick", func(ctx context.Context, a Args) (Args, error) { return a, nil }, task.Options{})
	// Sleep writes its pid to PIDFile, then sleeps for Sleep; if
	// Cooperative it returns its context's error as soon as the context
	// ends, else it ignores its context.
	Sleep = task.New("flowtest.sleep", sleep, task.Options{})
)

func sleep(ctx context.Context, a Args) (Args, error) {
	if a.PIDFile != "" {
		if err := os.WriteFile(a.PIDFile, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			return a, err
		}
	}
	t := time.NewTimer(a.Sleep)
	defer t.Stop()
	if !a.Cooperative {
		<-t.C
		return a, nil
	}
	select {
	case <-t.C:
		return a, nil
	case <-ctx.Done():
		return a, context.Cause(ctx)
	}
}

// Registry returns a registry of the package's tasks, for the workers of
// out-of-process executors.
func Registry() *executor.Registry {
	r, err := task.NewRegistry(Quick, Sleep)
	if err != nil {
		panic("flowtest: " + err.Error())
	}
	return r
}

// Options tune CheckStop.
type Options struct {
	// Limit is the flow's timeout. Zero means 300ms.
	Limit time.Duration
	// Within bounds how long Run may take past Limit before the check
	// fails: it is there to catch a run that hangs, not to measure. Zero
	// means 30s.
	Within time.Duration
}

// CheckStop runs, on ex, a flow whose timeout fires while two calls are
// running and others have not started, then checks that Run returned with
// every task final and in the state the flow package promises. On a hard
// executor the running calls ignore their context and CheckStop also
// checks that their processes are dead when Run returns; on a soft one
// they watch their context (a goroutine cannot be killed) and CheckStop
// checks that they stopped. It uses real time, and t.TempDir for the pid
// files.
func CheckStop(t *testing.T, ex executor.Executor, opts Options) {
	t.Helper()
	if opts.Limit <= 0 {
		opts.Limit = 300 * time.Millisecond
	}
	if opts.Within <= 0 {
		opts.Within = 30 * time.Second
	}
	hard := ex.Enforcement() == executor.Hard
	dir := t.TempDir()
	slowArgs := func(name string) Args {
		return Args{Sleep: time.Hour, Cooperative: !hard, PIDFile: filepath.Join(dir, name)}
	}

	b := flow.New("flowtest.stop", flow.Options{Timeout: opts.Limit})
	start := flow.Add(b, Quick, flow.Const(Args{}))
	slow1 := flow.Add(b, Sleep, flow.Convert(start, func(Args) Args { return slowArgs("slow1") })).Named("slow1")
	slow2 := flow.Add(b, Sleep, flow.Const(slowArgs("slow2"))).Named("slow2").After(start)
	after := flow.Add(b, Quick, slow1).Named("after")
	flow.Map(b, Quick, flow.Collect[Args](after, slow2)).Named("mapped")
	f, err := b.Build()
	require.NoError(t, err)

	began := time.Now()
	res, err := f.Run(context.Background(), ex, flow.RunOptions{})
	took := time.Since(began)
	require.NotNil(t, res)
	assert.Less(t, took, opts.Limit+opts.Within, "Run must return soon after the flow's limit")

	assert.Equal(t, task.TimedOut, res.State)
	assert.ErrorIs(t, err, flow.ErrTimeout)
	assert.NotErrorIs(t, err, executor.ErrTimeout, "no task overran a limit of its own")
	var te *flow.TimeoutError
	assert.ErrorAs(t, err, &te)
	states := map[string]task.State{}
	for _, tr := range res.Tasks {
		states[tr.Task] = tr.State
		assert.True(t, tr.State.Final(), "task %s ended %v", tr.Task, tr.State)
	}
	assert.Equal(t, map[string]task.State{
		"flowtest.quick": task.Success,
		"slow1":          task.Cancelled,
		"slow2":          task.Cancelled,
		"after":          task.Cancelled,
		"mapped":         task.Cancelled,
	}, states)
	started := 0
	for _, name := range []string{"slow1", "slow2"} {
		tr, ok := res.Task(name)
		require.True(t, ok)
		assert.ErrorIs(t, tr.Err, context.DeadlineExceeded, "%s: a flow timeout cancels running calls", name)
		assert.NotErrorIs(t, tr.Err, executor.ErrTimeout, "%s: the task did not overrun a limit of its own", name)
		// Both run at once on a concurrent executor; on a sequential one
		// (executor/local) the second never starts.
		assert.LessOrEqual(t, len(tr.Attempts), 1, name)
		started += len(tr.Attempts)
		pid := readPID(t, filepath.Join(dir, name))
		if hard && pid != 0 {
			t.Logf("%s ran in process %d", name, pid)
			assert.False(t, procgroup.Alive(pid), "%s: process %d must be dead (and reaped) when Run returns", name, pid)
		}
	}
	assert.Positive(t, started, "at least one slow task was running when the limit fired")
	for _, name := range []string{"after", "mapped"} {
		tr, ok := res.Task(name)
		require.True(t, ok)
		assert.Empty(t, tr.Attempts, "%s never started", name)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0 // the call was cancelled before the task began
	}
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err, fmt.Sprintf("pid file %s", path))
	return pid
}
