//go:build linux

package subprocess_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
	"github.com/flowline-go/flowline/internal/procgroup"
)

// newExecutor returns an executor that the test shuts down at its end.
func newExecutor(t *testing.T, opts subprocess.Options) *subprocess.Executor {
	t.Helper()
	ex, err := subprocess.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, ex.Shutdown(ctx))
		assert.Equal(t, int64(0), ex.Stats().Running)
	})
	return ex
}

// run submits call and waits for it.
func run(t *testing.T, ex *subprocess.Executor, call executor.Call) (any, *executor.Future, error) {
	t.Helper()
	f, err := ex.Submit(context.Background(), call)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := f.Wait(ctx)
	_, _, done := f.Result()
	require.True(t, done, "the call did not complete within a minute")
	return v, f, err
}

// pidOf runs pidTask and returns the worker's pid, checked against the
// Future's Worker.
func pidOf(t *testing.T, ex *subprocess.Executor) int {
	t.Helper()
	v, f, err := run(t, ex, executor.Call{Handler: pidTask, Limit: time.Minute})
	require.NoError(t, err)
	require.Equal(t, workerPID(t, f), v, "Future.Worker names the process that ran the call")
	return v.(int)
}

// gone waits up to five seconds for pid to disappear, zombie included.
func gone(t *testing.T, pid int) {
	t.Helper()
	require.Eventually(t, func() bool { return !alive(pid) }, 5*time.Second, time.Millisecond,
		"process %d is still there", pid)
}

func TestWorkersAreWarmAndReused(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	first := pidOf(t, ex)
	assert.NotEqual(t, os.Getpid(), first, "the call ran in another process")
	for range 5 {
		assert.Equal(t, first, pidOf(t, ex), "one worker serves every call")
	}
	p, err := procgroup.Stat(first)
	require.NoError(t, err)
	assert.Equal(t, first, p.PGID, "a worker leads a process group of its own")
	assert.Equal(t, os.Getpid(), p.PPID)
}

func TestMaxCallsRecyclesWorkers(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1, MaxCalls: 2})
	var pids []int
	for range 5 {
		pids = append(pids, pidOf(t, ex))
	}
	assert.Equal(t, pids[0], pids[1])
	assert.NotEqual(t, pids[1], pids[2], "a worker is replaced after MaxCalls calls")
	assert.Equal(t, pids[2], pids[3])
	assert.NotEqual(t, pids[3], pids[4])
	gone(t, pids[0])
	gone(t, pids[2])
}

func TestIdleWorkersAreRetired(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1, IdleTimeout: 100 * time.Millisecond})
	first := pidOf(t, ex)
	gone(t, first)
	second := pidOf(t, ex)
	assert.NotEqual(t, first, second, "a new worker starts when a call needs one")
}

func TestShutdownStopsAndReapsEveryWorker(t *testing.T) {
	// The tasks leave grandchildren that ignore SIGTERM: Shutdown gives
	// them the grace period, then SIGKILL.
	ex := newExecutor(t, subprocess.Options{Workers: 2, Grace: 200 * time.Millisecond})
	// Two calls at once start both workers.
	var pids [2]int
	var wg sync.WaitGroup
	for i := range pids {
		wg.Go(func() {
			f, err := ex.Submit(context.Background(), executor.Call{Handler: orphanTask})
			if !assert.NoError(t, err) {
				return
			}
			v, err := f.Wait(context.Background())
			if assert.NoError(t, err) {
				pids[i], _ = strconv.Atoi(strings.Fields(v.(string))[0])
			}
		})
	}
	wg.Wait()
	require.NotEqual(t, pids[0], pids[1])
	require.NoError(t, ex.Shutdown(context.Background()))
	for _, pid := range pids {
		assert.False(t, alive(pid), "worker %d survived Shutdown", pid)
		assert.False(t, alive(-pid), "the group of worker %d (its task's grandchild) survived Shutdown", pid)
	}
	_, err := ex.Submit(context.Background(), executor.Call{Handler: pidTask})
	assert.ErrorIs(t, err, executor.ErrClosed)
}

func TestCrashFailsOnlyItsCall(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 2})
	slow, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Sleep,
		Input: executortest.Args{N: 5, Sleep: 300 * time.Millisecond}, Limit: time.Minute})
	require.NoError(t, err)
	_, f, err := run(t, ex, executor.Call{Handler: executortest.Exit, Input: executortest.Args{N: 4}})
	var ce *executor.CrashError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "exit status 4", ce.Reason)
	assert.Contains(t, ce.Stderr, "exiting with status 4")
	crashed := workerPID(t, f)
	gone(t, crashed)

	v, err := slow.Wait(context.Background())
	require.NoError(t, err, "the other worker's call goes on")
	assert.Equal(t, executortest.Reply{N: 5}, v)
	assert.NotEqual(t, crashed, pidOf(t, ex))
}

func TestPanicInAGoroutineIsACrashWithTheTrace(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	_, _, err := run(t, ex, executor.Call{Handler: goPanicTask, Input: "boom in a goroutine", Limit: time.Minute})
	var ce *executor.CrashError
	require.ErrorAs(t, err, &ce, "a panic outside the task's goroutine kills the worker")
	assert.Equal(t, "exit status 2", ce.Reason)
	assert.Contains(t, ce.Stderr, "goroutine", "the tail of the panic's trace")
	assert.Contains(t, err.Error(), ce.Stderr, "the error quotes the tail")
	pidOf(t, ex)
}

func TestProtocolViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		task *executor.Handler
		want string
	}{
		{"Garbage", garbageTask, "protocol: frame of"},
		{"FrameOverTheLimit", oversizeTask, "protocol: frame of 1073741824 bytes over the limit of 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := newExecutor(t, subprocess.Options{Workers: 1, MaxFrame: 64 << 10})
			before := pidOf(t, ex)
			_, _, err := run(t, ex, executor.Call{Handler: tc.task, Limit: time.Minute})
			var ce *executor.CrashError
			require.ErrorAs(t, err, &ce)
			assert.True(t, strings.HasPrefix(ce.Reason, "protocol:"), "reason %q", ce.Reason)
			assert.Contains(t, ce.Reason, tc.want)
			gone(t, before)
			assert.NotEqual(t, before, pidOf(t, ex), "the worker is replaced")
		})
	}
}

func TestFrameLimitOnInputsAndResults(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1, MaxFrame: 64 << 10})
	before := pidOf(t, ex)

	_, _, err := run(t, ex, executor.Call{Handler: printTask, Input: strings.Repeat("y", 100<<10)})
	var ie *executor.InputError
	require.ErrorAs(t, err, &ie)
	assert.Contains(t, ie.Err.Error(), "over the frame limit")

	_, _, err = run(t, ex, executor.Call{Handler: bigTask, Input: 100 << 10})
	var oe *executor.OutputError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, bigTask.Name(), oe.Task)
	assert.Equal(t, "string", oe.Type)
	assert.Contains(t, err.Error(), "over the frame limit")

	v, _, err := run(t, ex, executor.Call{Handler: bigTask, Input: 10 << 10})
	require.NoError(t, err)
	assert.Len(t, v, 10<<10)
	assert.Equal(t, before, pidOf(t, ex), "refusing a result is not a crash")
}

func TestMemoryLimitKillsTheWorker(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1, MemoryLimit: 128 << 20, MemoryPoll: 10 * time.Millisecond})
	start := time.Now()
	_, f, err := run(t, ex, executor.Call{Handler: hogTask, Limit: time.Minute})
	var ce *executor.CrashError
	require.ErrorAs(t, err, &ce)
	assert.True(t, strings.HasPrefix(ce.Reason, "memory limit: resident set of"), "reason %q", ce.Reason)
	assert.Contains(t, ce.Reason, "over the limit of 128.0 MiB")
	assert.Less(t, time.Since(start), 30*time.Second)
	gone(t, workerPID(t, f))
	pidOf(t, ex)
}

func TestOutputStreamsReachTheCallersLogger(t *testing.T) {
	var buf executortest.LogBuffer
	logger := buf.Logger()
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	call := executor.Call{Handler: printTask, Input: "hello", RunID: "run-7", Attempt: 3, Logger: logger}
	_, f, err := run(t, ex, call)
	require.NoError(t, err)
	for _, want := range []string{
		`"@module":"subprocess.print"`, `"stream":"stdout"`, `"line":"out: hello"`,
		`"stream":"stderr"`, `"line":"err: hello"`, `"run":"run-7"`, `"attempt":3`,
		`"worker":"` + f.Worker() + `"`,
	} {
		assert.Eventually(t, func() bool { return strings.Contains(buf.String(), want) }, 5*time.Second, time.Millisecond,
			"%s not in\n%s", want, buf.String())
	}
}

func TestUnknownTaskNamesTheWorker(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	_, f, err := run(t, ex, executor.Call{Handler: executortest.Unregistered})
	var ue *executor.UnknownTaskError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, "worker "+f.Worker(), ue.Where)
}

func TestStartFailures(t *testing.T) {
	t.Run("MainWithoutTheHookExits", func(t *testing.T) {
		ex := newExecutor(t, subprocess.Options{Workers: 1, Env: []string{helperEnv + "=no-hook-exit"}})
		start := time.Now()
		_, _, err := run(t, ex, executor.Call{Handler: pidTask})
		var ce *executor.CrashError
		require.ErrorAs(t, err, &ce)
		assert.True(t, strings.HasPrefix(ce.Reason, "start:"), "reason %q", ce.Reason)
		assert.Contains(t, ce.Reason, "exited (exit status 0) before its handshake")
		assert.Contains(t, ce.Reason, "subprocess.ServeIfWorker")
		assert.Contains(t, ce.Stderr, "helper: a main without the hook")
		assert.Less(t, time.Since(start), 5*time.Second, "no wait for StartTimeout when the program exits")
	})
	t.Run("MainWithoutTheHookRunsOn", func(t *testing.T) {
		ex := newExecutor(t, subprocess.Options{Workers: 1, Env: []string{helperEnv + "=no-hook-hang"},
			StartTimeout: 300 * time.Millisecond})
		_, _, err := run(t, ex, executor.Call{Handler: pidTask})
		var ce *executor.CrashError
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Reason, "sent no handshake within 300ms")
		// The next call tries again, and fails the same way.
		_, _, err = run(t, ex, executor.Call{Handler: pidTask})
		require.ErrorAs(t, err, &ce)
	})
	t.Run("NoSuchProgram", func(t *testing.T) {
		ex := newExecutor(t, subprocess.Options{Path: "/nonexistent/program"})
		_, _, err := run(t, ex, executor.Call{Handler: pidTask})
		var ce *executor.CrashError
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Reason, "/nonexistent/program")
	})
	t.Run("WorkerThatDidNotCallTheHookStartsNone", func(t *testing.T) {
		// As in a worker whose main forgot the hook and went on to use an
		// executor: it must not start workers of its own.
		t.Setenv("FLOWLINE_SUBPROCESS_WORKER", "v1,1,1024")
		ex := newExecutor(t, subprocess.Options{Workers: 1})
		_, _, err := run(t, ex, executor.Call{Handler: pidTask})
		var ce *executor.CrashError
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Reason, "did not call subprocess.ServeIfWorker")
	})
}

func TestCancelWhileWaitingLeavesTheWorkerAlone(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1, MaxQueue: 1})
	busyCtx, stopBusy := context.WithCancel(context.Background())
	defer stopBusy()
	busy, err := ex.Submit(busyCtx, executor.Call{Handler: executortest.Sleep,
		Input: executortest.Args{Sleep: time.Hour, Cooperative: true}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return ex.Stats().Running == 1 }, time.Minute, time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	waiting, err := ex.Submit(ctx, executor.Call{Handler: pidTask})
	require.NoError(t, err)
	_, err = ex.Submit(context.Background(), executor.Call{Handler: pidTask})
	require.ErrorIs(t, err, executor.ErrQueueFull, "MaxQueue calls already wait")

	cancel()
	_, err = waiting.Wait(context.Background())
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, waiting.Worker(), "it never ran")
	_, _, done := busy.Result()
	assert.False(t, done, "cancelling a waiting call does not touch the running one")

	stopBusy()
	_, err = busy.Wait(context.Background())
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, executor.Stats{Submitted: 2, Canceled: 2}, ex.Stats())
}

func TestSIGTERMHandlingSurvivesATaskThatIgnoredIt(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	_, f, err := run(t, ex, executor.Call{Handler: ignoreTermTask})
	require.NoError(t, err)
	// Same worker: its SIGTERM handler is back, so a cooperative call does
	// not wait out a long grace period.
	start := time.Now()
	_, g, err := run(t, ex, executor.Call{Handler: executortest.Sleep, Input: executortest.Args{Sleep: time.Hour, Cooperative: true},
		Limit: 100 * time.Millisecond, Grace: time.Minute})
	require.ErrorIs(t, err, executor.ErrTimeout)
	assert.Equal(t, f.Worker(), g.Worker())
	assert.Less(t, time.Since(start), 30*time.Second)
}

func TestWorkersSurviveThreadsThatExitLocked(t *testing.T) {
	// A goroutine that exits while locked to its thread ends the thread;
	// were a worker's parent-death signal tied to it, the worker would die.
	ex := newExecutor(t, subprocess.Options{Workers: 2})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { pidOf(t, ex) })
	}
	wg.Wait()
	before := [2]int{pidOf(t, ex), pidOf(t, ex)}
	for range 50 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
		}()
		<-done
	}
	time.Sleep(50 * time.Millisecond)
	for _, pid := range before {
		assert.True(t, alive(pid), "worker %d died with a thread", pid)
	}
}

// TestChildrenDieWithTheirParent kills, with SIGKILL, a program that has
// two workers, each with a grandchild that ignores SIGTERM: all of them
// must be dead within a second.
func TestChildrenDieWithTheirParent(t *testing.T) {
	// The dead parent's processes come back to this one, the nearest
	// subreaper, to be reaped.
	require.NoError(t, procgroup.SetChildSubreaper())
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=parent")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var w1, g1, w2, g2 int
	_, err = fmt.Fscan(out, &w1, &g1, &w2, &g2)
	workers, all := []int{w1, w2}, []int{w1, g1, w2, g2}
	t.Cleanup(func() { // in case of failure
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for _, w := range workers {
			_ = procgroup.Signal(w, syscall.SIGKILL)
			procgroup.Drain(w, time.Now().Add(5*time.Second), true)
		}
	})
	require.NoError(t, err, "the helper prints its workers and their grandchildren")
	for _, pid := range all {
		require.True(t, alive(pid), "process %d is not running", pid)
	}

	killed := time.Now()
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	dead := func() bool {
		for _, w := range workers {
			members, err := procgroup.Members(w)
			require.NoError(t, err)
			for _, p := range members {
				if !p.Zombie() {
					return false
				}
			}
		}
		return true
	}
	if !assert.Eventually(t, dead, time.Second, time.Millisecond, "a worker or a grandchild outlived its parent by a second") {
		for _, w := range workers {
			members, _ := procgroup.Members(w)
			t.Logf("group %d: %+v", w, members)
		}
		t.FailNow()
	}
	t.Logf("everything was dead %v after the parent", time.Since(killed).Round(time.Millisecond))
	// They are this process's children now: reap them.
	for _, w := range workers {
		assert.True(t, procgroup.Drain(w, time.Now().Add(5*time.Second), true))
	}
	for _, pid := range all {
		assert.False(t, alive(pid), "process %d", pid)
	}
}
