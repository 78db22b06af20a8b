package cluster_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
)

// TestACallSubmittedAgainIsAnsweredWithItsRecord: a call submitted again
// with the identity of one already answered gets the recorded result,
// within the dedup window (not run again) and after it (run again, its
// new result dropped: the first result stands). Before the worker
// announced the record again, the second submission after the window
// was never answered: the watcher had delivered the record already.
func TestACallSubmittedAgainIsAnsweredWithItsRecord(t *testing.T) {
	var runs atomic.Int32
	counted := executor.NewHandler("counted", func(ctx context.Context, _ int) (int32, error) {
		return runs.Add(1), nil
	}, nil)
	setup := fast(cluster.Setup{DedupWindow: time.Second})
	ex := newExecutor(t, cluster.Options{Setup: setup})
	reg, err := executor.NewRegistry(counted)
	require.NoError(t, err)
	startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Setup: setup, Registry: reg})
	call := executor.Call{Handler: counted, Input: 0, RunID: "again", Attempt: 1}

	v, err := executor.Run(context.Background(), ex, call)
	require.NoError(t, err)
	require.Equal(t, int32(1), v)

	for _, gap := range []time.Duration{0, 1500 * time.Millisecond} { // inside, then past the window
		time.Sleep(gap)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := executor.Run(ctx, ex, call)
		cancel()
		require.NoError(t, err, "submitted again %v after", gap)
		assert.Equal(t, int32(1), v, "the first result stands")
	}
	assert.LessOrEqual(t, runs.Load(), int32(2), "run again only past the dedup window")
}
