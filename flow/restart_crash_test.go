package flow_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// failingAfter is a store whose Apply fails (as an unreachable store
// does) after n successful ones.
type failingAfter struct {
	store.Store
	n atomic.Int32
}

func (f *failingAfter) Apply(ctx context.Context, b *store.Batch) error {
	if f.n.Add(-1) < 0 {
		return store.ErrUnavailable
	}
	return f.Store.Apply(ctx, b)
}

// TestRestartStoppedMidwayIsResumedAsARestart: a restart that stops
// before its end is recorded (its process died, its store went away) is
// resumed as the restart it was: the task runs it was to run again still
// run, not their records from before the restart.
func TestRestartStoppedMidwayIsResumedAsARestart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
	fl := newFlaky(t, "flaky")
	ex := newPool(t, 2)
	fl.failedRuns(t, st, ex, "r", 1)
	broken := &failingAfter{Store: st}
	broken.n.Store(1) // the restart's "Running" record, then nothing
	_, err := fl.f.Restart(ctx, ex, "r0", flow.RunOptions{Store: broken})
	var se *flow.StoreError
	require.ErrorAs(t, err, &se)
	rec, err := st.Run(ctx, "r0")
	require.NoError(t, err)
	require.False(t, rec.Finished(), "the stopped restart is not recorded as ended")
	require.NoError(t, st.Release(ctx, "r0", rec.Owner))

	res, err := fl.f.Resume(ctx, ex, "r0", flow.RunOptions{Store: st})
	require.NoError(t, err)
	assert.Equal(t, task.Success, res.State)
	assert.Equal(t, 1, fl.runs.get("load r0/load"))
	assert.Equal(t, 1, fl.runs.get("report r0/report"), "report, never run before, runs in the resumed restart")
}
