package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
)

// TestLimitedCallsUnderLoad is the regression test of a race between a
// call returning right at its limit and the give-up path, which read the
// helper's context after handing the helper back: nil-pointer panics in
// Submit and calls expiring another call's context. Real clock, -race.
func TestLimitedCallsUnderLoad(t *testing.T) {
	ex := local.New(local.Options{})
	const submitters, each = 64, 150
	var wg sync.WaitGroup
	var bad atomic.Int64
	var errs sync.Map
	for g := range submitters {
		wg.Go(func() {
			for i := range each {
				token := strconv.Itoa(g*each + i)
				f, err := ex.Submit(context.Background(), executor.Call{
					Handler: executortest.Sleep,
					Input:   executortest.Args{Sleep: time.Millisecond, Text: token},
					Limit:   time.Millisecond,
				})
				if err != nil {
					bad.Add(1)
					errs.Store(token, err)
					continue
				}
				v, err := f.Wait(context.Background())
				var te *executor.TimeoutError
				switch {
				case err == nil && v.(executortest.Reply).Text == token && !v.(executortest.Reply).ReturnedLate:
				case errors.As(err, &te) && te.Task == executortest.Sleep.Name():
				default:
					bad.Add(1)
					errs.Store(token, fmt.Sprintf("%#v, %v", v, err))
				}
			}
		})
	}
	wg.Wait()
	errs.Range(func(k, v any) bool {
		t.Errorf("call %v: %v", k, v)
		return bad.Add(-1) > -5
	})
	require.NoError(t, ex.Shutdown(context.Background()))
	st := ex.Stats()
	assert.Equal(t, uint64(submitters*each), st.Submitted)
	assert.Equal(t, st.Submitted, st.Succeeded+st.Failed+st.TimedOut+st.Canceled)
	assert.Zero(t, st.Running)
	assert.Zero(t, st.Abandoned)
}

func TestGoexitWithALimitIsAPanicError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := local.New(local.Options{})
		for range 3 { // the helper is replaced each time
			f, err := ex.Submit(context.Background(), executor.Call{Handler: executortest.Goexit, Limit: time.Minute})
			require.NoError(t, err)
			_, err = f.Wait(context.Background())
			require.ErrorIs(t, err, executor.ErrGoexit)
			var pe *executor.PanicError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, executortest.Goexit.Name(), pe.Task)
		}
		v, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Echo, Input: executortest.Args{N: 2}, Limit: time.Minute})
		require.NoError(t, err)
		assert.Equal(t, 4, v.(executortest.Reply).N)
		require.NoError(t, ex.Shutdown(context.Background()))
		assert.Equal(t, executor.Stats{Submitted: 4, Succeeded: 1, Failed: 3}, ex.Stats())
	})
}

func TestGoexitWithoutALimitEndsTheCaller(t *testing.T) {
	logs := &executortest.LogBuffer{}
	ex := local.New(local.Options{Logger: logs.Logger()})
	var wg sync.WaitGroup
	returned := false
	wg.Go(func() {
		_, _ = ex.Submit(context.Background(), executor.Call{Handler: executortest.Goexit, RunID: "r"})
		returned = true
	})
	wg.Wait()
	assert.False(t, returned, "Goexit on the caller's goroutine ends it, as in plain Go")
	assert.Equal(t, executor.Stats{Submitted: 1, Failed: 1}, ex.Stats(), "the stats stay balanced")
	assert.Contains(t, logs.String(), "runtime.Goexit")
	require.NoError(t, ex.Shutdown(context.Background()))
}

// blockingWriter blocks the first write that contains what until release
// is closed.
type blockingWriter struct {
	what    string
	once    sync.Once
	blocked chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.what)) {
		w.once.Do(func() {
			close(w.blocked)
			<-w.release
		})
	}
	return len(p), nil
}

func TestBlockingLoggerDoesNotDelayOtherCalls(t *testing.T) {
	w := &blockingWriter{what: "abandoned", blocked: make(chan struct{}), release: make(chan struct{})}
	ex := local.New(local.Options{Logger: hclog.New(&hclog.LoggerOptions{Output: w, Level: hclog.Trace})})
	var wg sync.WaitGroup
	wg.Go(func() { // times out; its abandonment log blocks
		_, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Sleep,
			Input: executortest.Args{Sleep: 50 * time.Millisecond}, Limit: time.Millisecond})
		assert.ErrorIs(t, err, executor.ErrTimeout)
	})
	<-w.blocked
	done := make(chan error, 1)
	go func() {
		_, err := executor.Run(context.Background(), ex, executor.Call{Handler: executortest.Sleep,
			Input: executortest.Args{Sleep: time.Hour, Cooperative: true}, Limit: 20 * time.Millisecond})
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, executor.ErrTimeout, "another call's limit fires while a logger blocks")
	case <-time.After(10 * time.Second):
		t.Error("a blocked logger held up another call's limit")
		close(w.release)
		<-done
		w.release = make(chan struct{})
	}
	close(w.release)
	wg.Wait()
	require.NoError(t, ex.Shutdown(context.Background()))
}
