//go:build linux

package subprocess_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

// cleanupTask waits for its context to end, then spends Sleep cleaning up
// and appends "cleaned up" to Path before it returns the context's error.
var cleanupTask = executor.NewHandler("subprocess.cleanup", func(ctx context.Context, a executortest.Args) (int, error) {
	<-ctx.Done()
	time.Sleep(a.Sleep)
	f, err := os.OpenFile(a.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.WriteString("cleaned up\n"); err != nil {
		return 0, err
	}
	return 0, ctx.Err()
}, nil)

// lines returns the lines in the file at path, none if it does not exist.
func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.FieldsFunc(string(data), func(r rune) bool { return r == '\n' })
}

// ticker is Prefect's own test of its timeout handler: a task that writes
// a line to a file every 260ms, ignoring its context, under a 1s limit.
func ticker(path string, grace time.Duration) executor.Call {
	return executor.Call{Handler: executortest.Append,
		Input: executortest.Args{Path: path, Tick: 260 * time.Millisecond, Sleep: time.Hour},
		Limit: time.Second, Grace: grace}
}

// timedOut checks that err is a hard timeout whose work was stopped.
func timedOut(t *testing.T, err error) {
	t.Helper()
	var te *executor.TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, executor.Hard, te.Enforcement)
	assert.True(t, te.Stopped, "the work is known to have stopped")
}

func TestByDefaultTheWorkStopsAtItsLimit(t *testing.T) {
	// Lines at 0, 260, 520 and 780ms; the fifth would come at 1040ms, after
	// the limit. The process is dead when the caller hears, so the file
	// never grows after that.
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	path := filepath.Join(t.TempDir(), "ticks")
	_, _, err := run(t, ex, ticker(path, 0))
	timedOut(t, err)
	got := lines(t, path)
	assert.NotEmpty(t, got, "the task ran")
	assert.LessOrEqual(t, len(got), 4, "the task wrote after its limit: %q", got)
}

func TestNegativeCallGraceMeansNone(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1, Grace: time.Hour})
	path := filepath.Join(t.TempDir(), "ticks")
	_, _, err := run(t, ex, ticker(path, -1))
	timedOut(t, err)
	got := lines(t, path)
	assert.NotEmpty(t, got, "the task ran")
	assert.LessOrEqual(t, len(got), 4, "the task wrote after its limit: %q", got)
}

func TestGraceLetsGoCodeThatIgnoresItsContextRunOn(t *testing.T) {
	// What a grace period costs: the worker caught SIGTERM and ended the
	// task's context, but the task ignores it and writes on until SIGKILL
	// at limit + grace (lines at 1040, 1300 and 1560ms, before 1600ms).
	for name, opts := range map[string]struct{ exec, call time.Duration }{
		"OptionsGrace": {exec: 600 * time.Millisecond},
		"CallGrace":    {exec: 0, call: 600 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			ex := newExecutor(t, subprocess.Options{Workers: 1, Grace: opts.exec})
			path := filepath.Join(t.TempDir(), "ticks")
			_, _, err := run(t, ex, ticker(path, opts.call))
			timedOut(t, err)
			assert.Greater(t, len(lines(t, path)), 4, "the task ran during the grace period")
		})
	}
}

func TestGraceLetsACooperativeTaskCleanUp(t *testing.T) {
	for name, tc := range map[string]struct {
		opts    subprocess.Options
		grace   time.Duration
		cleaned bool
	}{
		"DefaultNoGrace": {opts: subprocess.Options{Workers: 1}},
		"CallGrace":      {opts: subprocess.Options{Workers: 1}, grace: time.Minute, cleaned: true},
		"OptionsGrace":   {opts: subprocess.Options{Workers: 1, Grace: time.Minute}, cleaned: true},
		"CallSaysNone":   {opts: subprocess.Options{Workers: 1, Grace: time.Minute}, grace: -1},
	} {
		t.Run(name, func(t *testing.T) {
			ex := newExecutor(t, tc.opts)
			path := filepath.Join(t.TempDir(), "cleanup")
			_, _, err := run(t, ex, executor.Call{Handler: cleanupTask,
				Input: executortest.Args{Path: path, Sleep: 500 * time.Millisecond},
				Limit: 200 * time.Millisecond, Grace: tc.grace})
			timedOut(t, err)
			if tc.cleaned {
				assert.Equal(t, []string{"cleaned up"}, lines(t, path),
					"the task cleaned up during the grace period, and the caller heard after it returned")
			} else {
				assert.Empty(t, lines(t, path), "without a grace period the task is killed at its limit")
			}
		})
	}
}

func TestCancellationWithoutGraceKillsAtOnce(t *testing.T) {
	// The caller gives up: without a grace period the task gets no time to
	// clean up either.
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	path := filepath.Join(t.TempDir(), "cleanup")
	ctx, cancel := context.WithCancel(context.Background())
	f, err := ex.Submit(ctx, executor.Call{Handler: cleanupTask, Input: executortest.Args{Path: path, Sleep: 500 * time.Millisecond}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return ex.Stats().Running == 1 }, time.Minute, time.Millisecond)
	cancel()
	_, err = f.Wait(context.Background())
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, executor.ErrTimeout)
	assert.Empty(t, lines(t, path), "without a grace period the task is killed at once")
}
