//go:build linux

package subprocess_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/subprocess"
)

// goexitTask calls runtime.Goexit, from a helper as a test's t.FailNow
// would.
var goexitTask = executor.NewHandler("subprocess.goexit", func(ctx context.Context, _ struct{}) (int, error) {
	func() { runtime.Goexit() }()
	return 0, nil
}, nil)

func TestGoexitIsAPanicAndTheWorkerServesOn(t *testing.T) {
	for name, limit := range map[string]time.Duration{"NoLimit": 0, "Limit": time.Minute} {
		t.Run(name, func(t *testing.T) {
			ex := newExecutor(t, subprocess.Options{Workers: 1})
			before := pidOf(t, ex)
			f, err := ex.Submit(context.Background(), executor.Call{Handler: goexitTask, Limit: limit})
			require.NoError(t, err)
			// The answer comes at once; on a deaf worker it would come at
			// the limit, or never without one.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err = f.Wait(ctx)
			_, _, done := f.Result()
			require.True(t, done, "a call whose task called runtime.Goexit was not answered")
			var pe *executor.PanicError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, goexitTask.Name(), pe.Task)
			assert.Contains(t, err.Error(), executor.ErrGoexit.Error())
			assert.Equal(t, executor.ClassPanic, executor.ClassOf(err))
			assert.Equal(t, before, workerPID(t, f), "it ran in the warm worker")
			assert.Equal(t, before, pidOf(t, ex), "the worker is kept and serves the next call")
			// newExecutor's cleanup checks that Shutdown returns.
		})
	}
}
