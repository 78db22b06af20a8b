package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/executortest"
)

// stuckWriter blocks every Write until release is closed; entered is
// closed at the first Write.
type stuckWriter struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func newStuckWriter() *stuckWriter {
	return &stuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return len(p), nil
}

func TestABlockedCallLoggerStallsNoOtherCall(t *testing.T) {
	const limit = 200 * time.Millisecond
	ex := newExecutor(t, cluster.Options{})
	stuck := newStuckWriter()
	released := false
	release := func() {
		if !released {
			released = true
			close(stuck.release)
		}
	}
	t.Cleanup(release) // runs before the executor's and the worker's shutdown
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex)})

	blocked, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Log, RunID: "blocked",
		Input: executortest.Args{N: 1, Text: "stuck"}, Logger: hclog.New(&hclog.LoggerOptions{Output: stuck})})
	require.NoError(t, err)
	select {
	case <-stuck.entered:
	case <-time.After(10 * time.Second):
		require.FailNow(t, "the blocked call's line never reached its logger")
	}

	// Another call that logs: its line reaches its own logger and it
	// completes.
	lines := &executortest.LogBuffer{}
	logged, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Log, RunID: "logged",
		Input: executortest.Args{N: 2, Text: "free"}, Logger: lines.Logger()})
	require.NoError(t, err)
	// A call without a logger.
	plain, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Echo, RunID: "plain",
		Input: executortest.Args{N: 3}})
	require.NoError(t, err)
	// A limited call, with a logger, that overruns its limit.
	start := time.Now()
	limited, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Sleep, RunID: "limited",
		Input: args(4, time.Hour), Limit: limit, Logger: (&executortest.LogBuffer{}).Logger()})
	require.NoError(t, err)

	v, err, ok := within(t, logged, 10*time.Second, "the other logging call")
	if ok {
		assert.NoError(t, err)
		assert.Equal(t, 2, v.(executortest.Reply).N)
		assert.Contains(t, lines.String(), "hello from task", "the other call's line did not reach its logger before its result")
	}
	v, err, ok = within(t, plain, 10*time.Second, "the call without a logger")
	if ok {
		assert.NoError(t, err)
		assert.Equal(t, 6, v.(executortest.Reply).N)
	}
	_, err, ok = within(t, limited, 10*time.Second, "the limited call")
	if ok {
		var te *executor.TimeoutError
		assert.ErrorAs(t, err, &te)
		// The worker's executor enforces the limit; the submitter's
		// backstop (limit, ack wait, margin) is not what answered it.
		assert.Less(t, time.Since(start), limit+time.Second, "the limited call was answered by the backstop, not near its limit")
	}
	release()
	_, err, ok = within(t, blocked, 10*time.Second, "the blocked call, released")
	if ok {
		assert.NoError(t, err)
	}
}
