//go:build linux

package subprocess_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

// full returns an executor with one worker busy until the returned func is
// called, and its queue of one full.
func full(t *testing.T) (*subprocess.Executor, func()) {
	t.Helper()
	ex := newExecutor(t, subprocess.Options{Workers: 1, MaxQueue: 1})
	busyCtx, stopBusy := context.WithCancel(context.Background())
	t.Cleanup(stopBusy)
	_, err := ex.Submit(busyCtx, executor.Call{Handler: executortest.Sleep,
		Input: executortest.Args{Sleep: time.Hour, Cooperative: true}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return ex.Stats().Running == 1 }, time.Minute, time.Millisecond)
	_, err = ex.Submit(context.Background(), executor.Call{Handler: pidTask})
	require.NoError(t, err)
	return ex, stopBusy
}

type submitted struct {
	f   *executor.Future
	err error
}

// submitAsync runs Submit on a goroutine that the test waits for.
func submitAsync(t *testing.T, ex *subprocess.Executor, ctx context.Context) <-chan submitted {
	c := make(chan submitted, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := ex.Submit(ctx, executor.Call{Handler: pidTask})
		c <- submitted{f, err}
	}()
	t.Cleanup(func() { <-done })
	return c
}

func TestTrySubmitFailsFastWhenTheQueueIsFull(t *testing.T) {
	ex, _ := full(t)
	before := ex.Stats()
	_, err := ex.TrySubmit(context.Background(), executor.Call{Handler: pidTask})
	require.ErrorIs(t, err, executor.ErrQueueFull)
	assert.Equal(t, before, ex.Stats(), "a refused call is not counted")
}

func TestSubmitWaitsForRoom(t *testing.T) {
	ex, stopBusy := full(t)
	c := submitAsync(t, ex, context.Background())
	select {
	case s := <-c:
		t.Fatalf("Submit returned (%v, %v) while the queue was full; it must wait for room", s.f, s.err)
	case <-time.After(100 * time.Millisecond):
	}
	stopBusy() // the busy call ends, the queued one runs: room for the waiting one
	s := <-c
	require.NoError(t, s.err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := s.f.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, workerPID(t, s.f), v)
}

func TestSubmitWaitingForRoomEndsWithItsContext(t *testing.T) {
	ex, _ := full(t)
	before := ex.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	f, err := ex.Submit(ctx, executor.Call{Handler: pidTask})
	assert.Nil(t, f)
	require.Equal(t, context.DeadlineExceeded, err, "exactly the context's error")
	assert.Equal(t, before, ex.Stats(), "the call was not accepted")
}

func TestSubmitWaitingForRoomFailsAtShutdown(t *testing.T) {
	ex, stopBusy := full(t)
	c := submitAsync(t, ex, context.Background())
	select {
	case s := <-c:
		t.Fatalf("Submit returned (%v, %v) while the queue was full; it must wait for room", s.f, s.err)
	case <-time.After(100 * time.Millisecond):
	}
	shut := make(chan error, 1)
	go func() { shut <- ex.Shutdown(context.Background()) }()
	s := <-c
	require.ErrorIs(t, s.err, executor.ErrClosed)
	assert.Nil(t, s.f)
	stopBusy()
	require.NoError(t, <-shut)
	assert.Equal(t, executor.Stats{Submitted: 2, Succeeded: 1, Canceled: 1}, ex.Stats())
}
