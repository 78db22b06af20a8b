package pool_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/pool"
)

func TestConformanceSubmitFuture(t *testing.T) {
	executortest.Run(t, executortest.Config{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			return executortest.ThroughSubmitFuture(pool.New(pool.Options{Workers: 2, Queue: 1, Logger: logger}))
		},
		Synctest: true,
		Capacity: 3,
	})
}

// TestSubmitFutureReuse reuses a few futures for many calls, on the real
// clock with -race: every answer is its own call's, including for calls
// that time out or are cancelled, and a Future reset right after it
// completed is never written again by the call before.
func TestSubmitFutureReuse(t *testing.T) {
	ex := pool.New(pool.Options{Workers: 4})
	defer func() { require.NoError(t, ex.Shutdown(context.Background())) }()
	const slots, each = 8, 300
	var wg sync.WaitGroup
	for s := range slots {
		wg.Go(func() {
			var f executor.Future
			for i := range each {
				n := s*each + i
				ctx, cancel := context.WithCancel(context.Background())
				call := executor.Call{Handler: executortest.Echo, RunID: "r" + strconv.Itoa(n), Attempt: 1,
					Input: executortest.Args{N: n, Text: strconv.Itoa(n)}}
				switch n % 10 {
				case 3: // times out
					call.Handler, call.Limit = executortest.Sleep, time.Millisecond
					call.Input = executortest.Args{Sleep: time.Hour, Cooperative: true, Text: "x"}
				case 7: // cancelled while it sleeps
					call.Handler = executortest.Sleep
					call.Input = executortest.Args{Sleep: time.Hour, Cooperative: true, Text: "x"}
					time.AfterFunc(time.Millisecond, cancel)
				}
				f.Reset()
				if !assert.NoError(t, ex.SubmitFuture(ctx, call, &f)) {
					cancel()
					return
				}
				v, err := f.Wait(context.Background())
				cancel()
				switch n % 10 {
				case 3:
					assert.ErrorIs(t, err, executor.ErrTimeout, "call %d", n)
				case 7:
					assert.ErrorIs(t, err, context.Canceled, "call %d", n)
				default:
					if assert.NoError(t, err, "call %d", n) {
						assert.Equal(t, executortest.Reply{N: 2 * n, Text: strconv.Itoa(n)}, v, "call %d", n)
					}
				}
			}
		})
	}
	wg.Wait()
}
