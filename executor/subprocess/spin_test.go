//go:build linux

package subprocess_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

// Polling the pipes (Options.Spin) changes how a reader waits, never what
// it reads: calls one at a time (the worker is asked to poll) and several
// at once (it is not), with polling off, by default and long, each get
// their own answer, and a timeout still kills.
func TestSpinKeepsEveryAnswer(t *testing.T) {
	for name, spin := range map[string]time.Duration{"Off": -1, "Default": 0, "Long": 5 * time.Millisecond} {
		t.Run(name, func(t *testing.T) {
			ex := newExecutor(t, subprocess.Options{Workers: 2, Spin: spin})
			ctx := context.Background()
			for i := range 50 {
				v, err := executor.Run(ctx, ex, executor.Call{Handler: executortest.Echo, Input: executortest.Args{N: i}})
				require.NoError(t, err)
				assert.Equal(t, 2*i, v.(executortest.Reply).N)
			}
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := range 25 {
						n := 100*g + i
						v, err := executor.Run(ctx, ex, executor.Call{Handler: executortest.Echo, Input: executortest.Args{N: n}})
						if assert.NoError(t, err) {
							assert.Equal(t, 2*n, v.(executortest.Reply).N)
						}
					}
				})
			}
			wg.Wait()
			_, err := executor.Run(ctx, ex, executor.Call{Handler: executortest.Sleep,
				Input: executortest.Args{Sleep: time.Hour}, Limit: 10 * time.Millisecond})
			var te *executor.TimeoutError
			require.ErrorAs(t, err, &te)
			assert.True(t, te.Stopped)
			v, err := executor.Run(ctx, ex, executor.Call{Handler: executortest.Echo, Input: executortest.Args{N: 1}})
			require.NoError(t, err)
			assert.Equal(t, 2, v.(executortest.Reply).N)
		})
	}
}
