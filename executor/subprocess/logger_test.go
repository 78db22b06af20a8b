//go:build linux

package subprocess_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

// chattyTask prints its text to stdout and logs it, then waits for its
// context to end.
var chattyTask = executor.NewHandler("subprocess.chatty", func(ctx context.Context, text string) (int, error) {
	fmt.Println("chatty: " + text)
	executor.Logger(ctx).Info("chatty", "text", text)
	<-ctx.Done()
	return 0, ctx.Err()
}, nil)

// stuckLogger is a user's logger that hangs: every call that names,
// derives or logs blocks until gate closes.
type stuckLogger struct {
	hclog.Logger
	gate <-chan struct{}
	hits *atomic.Int32 // calls that blocked
}

func (l stuckLogger) block() {
	l.hits.Add(1)
	<-l.gate
}

func (l stuckLogger) wrap(inner hclog.Logger) hclog.Logger {
	return stuckLogger{Logger: inner, gate: l.gate, hits: l.hits}
}

func (l stuckLogger) Named(name string) hclog.Logger {
	l.block()
	return l.wrap(l.Logger.Named(name))
}

func (l stuckLogger) With(args ...any) hclog.Logger {
	l.block()
	return l.wrap(l.Logger.With(args...))
}

func (l stuckLogger) Log(level hclog.Level, msg string, args ...any) {
	l.block()
	l.Logger.Log(level, msg, args...)
}

func (l stuckLogger) Info(msg string, args ...any) {
	l.block()
	l.Logger.Info(msg, args...)
}

func TestAStuckLoggerStallsNeitherOtherCallsNorLimits(t *testing.T) {
	ex := newExecutor(t, subprocess.Options{Workers: 2})
	gate := make(chan struct{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(gate) }) }) // before the Shutdown of newExecutor's cleanup
	var buf executortest.LogBuffer
	var hits atomic.Int32
	stuck := stuckLogger{Logger: buf.Logger(), gate: gate, hits: &hits}

	a, err := ex.Submit(context.Background(), executor.Call{Handler: chattyTask, Input: "to a stuck logger",
		Limit: 300 * time.Millisecond, Logger: stuck})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hits.Load() > 0 }, time.Minute, time.Millisecond,
		"the task's output reached its logger")

	// Other calls run on the other worker, and their limits hold. Were the
	// executor to hold a lock of its own across the stuck logger, Submit
	// would hang: the calls run on a goroutine the test can give up on.
	others := make(chan error, 1)
	go func() {
		for range 3 {
			if _, err := executor.Run(context.Background(), ex, executor.Call{Handler: pidTask, Limit: time.Minute}); err != nil {
				others <- err
				return
			}
		}
		_, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Sleep,
			Input: executortest.Args{Sleep: time.Hour}, Limit: 100 * time.Millisecond})
		others <- err
	}()
	select {
	case err := <-others:
		timedOut(t, err)
	case <-time.After(20 * time.Second):
		release.Do(func() { close(gate) })
		t.Fatal("other calls stalled behind a stuck logger")
	}

	// The call whose logger is stuck is still answered at its limit.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = a.Wait(ctx)
	if _, _, done := a.Result(); !done {
		release.Do(func() { close(gate) })
		t.Fatal("the call whose logger is stuck was not answered at its limit")
	}
	timedOut(t, err)
}
