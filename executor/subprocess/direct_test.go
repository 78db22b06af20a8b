//go:build linux

package subprocess_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
	"github.com/flowline-go/flowline/executor/subprocess/internal/proto"
	"github.com/flowline-go/flowline/internal/frame"
)

// The tasks of the direct-pipe tests, registered in main_test.go.
var (
	// logOnceTask logs its text and returns it.
	logOnceTask = executor.NewHandler("subprocess.log-once", func(ctx context.Context, text string) (string, error) {
		executor.Logger(ctx).Info("logged", "text", text)
		return text, nil
	}, nil)
	// directGarbageTask writes a frame of an unknown kind on the direct
	// pipe, then waits for its context.
	directGarbageTask = executor.NewHandler("subprocess.direct-garbage", func(ctx context.Context, _ struct{}) (int, error) {
		b := frame.Begin(nil, 'Z')
		b, err := frame.End(b, 0, 1<<10)
		if err == nil {
			_, err = os.NewFile(5, "direct").Write(b)
		}
		<-ctx.Done()
		return 0, err
	}, nil)
	// directMovedTask writes a Moved frame for another call on the direct
	// pipe, then waits for its context.
	directMovedTask = executor.NewHandler("subprocess.direct-moved", func(ctx context.Context, _ struct{}) (int, error) {
		b, err := (&proto.Moved{Seq: 1 << 50}).Append(nil, 1<<10)
		if err == nil {
			_, err = os.NewFile(5, "direct").Write(b)
		}
		<-ctx.Done()
		return 0, err
	}, nil)
)

// TestRunReadsItsOwnAnswer: Run's calls that an idle worker takes come
// back on the direct pipe, read by the caller, and answer as Submit's do.
func TestRunReadsItsOwnAnswer(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	pidOf(t, ex) // the first call waits in the queue for the worker to start
	for i := range 50 {
		v, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Echo,
			Input: executortest.Args{N: i, Text: "direct"}})
		require.NoError(t, err)
		rep := v.(executortest.Reply)
		assert.Equal(t, 2*i, rep.N, "Echo doubles N")
		assert.Equal(t, "direct", rep.Text)
	}
	direct, moved := subprocess.DirectAnswers(ex)
	assert.Equal(t, uint64(50), direct, "every call came back on the direct pipe")
	assert.Zero(t, moved)
	// Submit's calls do not: nobody would read the direct pipe for them.
	_, _, err := run(t, ex, executor.Call{Handler: executortest.Echo, Input: executortest.Args{N: 1}})
	require.NoError(t, err)
	direct, _ = subprocess.DirectAnswers(ex)
	assert.Equal(t, uint64(50), direct)
	st := ex.Stats()
	assert.Equal(t, uint64(52), st.Submitted)
	assert.Equal(t, uint64(52), st.Succeeded)
}

// TestRunLogsBeforeItsAnswer: the log lines of a call through Run reach
// its logger before Run returns, as with Submit: the worker sends such a
// call's result after its logs, on the results pipe.
func TestRunLogsBeforeItsAnswer(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	pidOf(t, ex)
	for i := range 30 {
		var buf executortest.LogBuffer
		text := fmt.Sprintf("line %d", i)
		v, err := executor.Run(context.Background(), ex, executor.Call{Handler: logOnceTask, Input: text,
			Logger: buf.Logger()})
		require.NoError(t, err)
		assert.Equal(t, text, v)
		assert.Contains(t, buf.String(), text, "the line is there when Run returns")
	}
	direct, moved := subprocess.DirectAnswers(ex)
	assert.Zero(t, direct)
	assert.Equal(t, uint64(30), moved, "each result moved to the results pipe, after its logs")
}

// TestRunFailuresOnTheDirectPipe: a timeout, a cancellation, a crash and
// a broken protocol on the direct pipe answer a call through Run as they
// answer one through Submit, and the next call gets a new worker.
func TestRunFailuresOnTheDirectPipe(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 1})
	pid := func() int {
		v, err := executor.Run(context.Background(), ex, executor.Call{Handler: pidTask})
		require.NoError(t, err)
		return v.(int)
	}

	before := pid()
	_, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Sleep,
		Input: executortest.Args{Sleep: time.Hour}, Limit: 100 * time.Millisecond})
	var te *executor.TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, executor.Hard, te.Enforcement)
	assert.True(t, te.Stopped, "the worker is dead and reaped when Run returns")
	gone(t, before)

	before = pid()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = executor.Run(ctx, ex, executor.Call{Handler: executortest.Sleep, Input: executortest.Args{Sleep: time.Hour}})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, executor.ClassCanceled, executor.ClassOf(err))
	gone(t, before)

	before = pid()
	_, err = executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Exit, Input: executortest.Args{N: 3}})
	var ce *executor.CrashError
	require.ErrorAs(t, err, &ce)
	gone(t, before)

	for _, tc := range []struct {
		task *executor.Handler
		want string
	}{
		{directGarbageTask, `protocol: direct pipe: unexpected frame of kind 'Z'`},
		{directMovedTask, "protocol: direct pipe: a Moved frame for call 1125899906842624"},
	} {
		before = pid()
		_, err = executor.Run(context.Background(), ex, executor.Call{Handler: tc.task, Limit: time.Minute})
		require.ErrorAs(t, err, &ce)
		assert.True(t, strings.HasPrefix(ce.Reason, tc.want), "reason %q", ce.Reason)
		gone(t, before)
	}
	assert.NotZero(t, pid())
}

// TestRunAndSubmitTogether: many callers at once, some through Run, some
// through Submit, some logging, on as many workers as callers (so that
// most calls find an idle worker and go direct): each gets its own answer,
// and every log line reaches its call's logger first.
func TestRunAndSubmitTogether(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 4})
	var wg sync.WaitGroup
	var warm []*executor.Future // four calls at once start the four workers
	for range 4 {
		f, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Sleep,
			Input: executortest.Args{Sleep: 100 * time.Millisecond}})
		require.NoError(t, err)
		warm = append(warm, f)
	}
	for _, f := range warm {
		_, err := f.Wait(context.Background())
		require.NoError(t, err)
	}
	for g := range 4 {
		wg.Go(func() {
			for i := range 40 {
				text := fmt.Sprintf("g%d-%d", g, i)
				var buf executortest.LogBuffer
				call := executor.Call{Handler: executortest.Echo, Input: executortest.Args{N: i, Text: text}}
				if i%3 == 0 {
					call = executor.Call{Handler: logOnceTask, Input: text, Logger: buf.Logger()}
				}
				var v any
				var err error
				if (g+i)%2 == 0 {
					v, err = executor.Run(context.Background(), ex, call)
				} else {
					var f *executor.Future
					if f, err = ex.Submit(context.Background(), call); err == nil {
						v, err = f.Wait(context.Background())
					}
				}
				if !assert.NoError(t, err, text) {
					return
				}
				if i%3 == 0 {
					assert.Equal(t, text, v)
					assert.Contains(t, buf.String(), text)
				} else {
					assert.Equal(t, text, v.(executortest.Reply).Text)
				}
			}
		})
	}
	wg.Wait()
	direct, moved := subprocess.DirectAnswers(ex)
	t.Logf("direct %d, moved %d of 160 calls", direct, moved)
	assert.NotZero(t, direct, "some calls went direct")
	assert.NotZero(t, moved, "some logging calls went direct")
	st := ex.Stats()
	assert.Equal(t, uint64(164), st.Submitted)
	assert.Equal(t, uint64(164), st.Succeeded)
}
