package local_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
)

// TestEachCallGetsItsOwnDeadline: the timer that enforces limits is armed
// lazily (left alone for a later deadline, re-armed when it fires early),
// so calls in a row on one helper with longer and shorter limits each time
// out exactly at their own limit, never at an earlier call's.
func TestEachCallGetsItsOwnDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := local.New(local.Options{})
		bg := context.Background()
		steps := []struct {
			name  string
			limit time.Duration
			sleep time.Duration // cooperative: returns early if its context ends
			late  bool
		}{
			{"a long limit, returns at once", time.Hour, 0, false},
			{"a shorter limit after a longer one, overruns", 10 * time.Millisecond, time.Hour, true},
			{"a short limit, returns at once", 10 * time.Millisecond, 0, false},
			{"the timer fires for the last deadline, this call goes on", 50 * time.Millisecond, 30 * time.Millisecond, false},
			{"a longer limit, overruns", 70 * time.Millisecond, time.Hour, true},
			{"the same limit again, returns in time", 70 * time.Millisecond, 69 * time.Millisecond, false},
			{"the same limit again, overruns", 70 * time.Millisecond, time.Hour, true},
		}
		for _, st := range steps {
			start := time.Now()
			f, err := ex.Submit(bg, executor.Call{Handler: executortest.Sleep,
				Input: executortest.Args{N: 1, Sleep: st.sleep, Cooperative: true}, Limit: st.limit})
			require.NoError(t, err, st.name)
			_, err = f.Wait(bg)
			if !st.late {
				assert.NoError(t, err, st.name)
				assert.Equal(t, st.sleep, time.Since(start), st.name)
				continue
			}
			var te *executor.TimeoutError
			if assert.ErrorAs(t, err, &te, st.name) {
				assert.Equal(t, st.limit, te.Elapsed, st.name)
			}
			synctest.Wait() // the cooperative task returns: the next call gets the same worker
		}
		require.NoError(t, ex.Shutdown(bg))
	})
}
