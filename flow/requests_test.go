package flow_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
	"github.com/flowline-go/flowline/task"
)

// blockingFlow is "prep" -> "wait": wait blocks until its context ends
// and reports when that was (the time since the run started) on stopped.
type blockingFlow struct {
	f       *flow.Flow
	waits   atomic.Int32
	stopped chan time.Time
}

func newBlockingFlow(t *testing.T, name string) *blockingFlow {
	bf := &blockingFlow{stopped: make(chan time.Time, 1)}
	prep := task.New("prep", func(_ context.Context, _ struct{}) (int, error) { return 1, nil }, task.Options{})
	wait := task.New("wait", func(ctx context.Context, n int) (int, error) {
		bf.waits.Add(1)
		<-ctx.Done()
		select {
		case bf.stopped <- time.Now():
		default: // only the first one is looked at
		}
		return 0, ctx.Err()
	}, task.Options{})
	b := flow.New(name, flow.Options{})
	flow.Add(b, wait, flow.Add(b, prep, flow.Const(struct{}{})))
	f, err := b.Build()
	require.NoError(t, err)
	bf.f = f
	return bf
}

// TestCancelRequestSeenAtTheNextPoll: a request made 2.6 s into a run
// stops it at the poll after it, exactly; with polling off only ctx stops
// it. Either way the run ends Cancelled, recorded, the request cleared.
func TestCancelRequestSeenAtTheNextPoll(t *testing.T) {
	for _, tc := range []struct {
		name    string
		poll    time.Duration
		stopped time.Duration // when the run stops, from its start
		byStore bool
	}{
		{"DefaultEverySecond", 0, 3 * time.Second, true},
		{"Every250ms", 250 * time.Millisecond, 2750 * time.Millisecond, true},
		{"Never", -1, 10 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
				bf := newBlockingFlow(t, "blocking")
				ex := newPool(t, 2)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				stopAt := time.AfterFunc(10*time.Second, cancel) // the caller's own cancel
				defer stopAt.Stop()
				start := time.Now()
				type out struct {
					res *flow.Result
					err error
				}
				done := make(chan out, 1)
				go func() {
					res, err := bf.f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: "r1", CancelPoll: tc.poll})
					done <- out{res, err}
				}()
				time.Sleep(2600 * time.Millisecond)
				require.NoError(t, st.RequestCancel(context.Background(), "r1"))
				got := <-done
				assert.Equal(t, tc.stopped, (<-bf.stopped).Sub(start), "when the task saw its context end")
				require.NotNil(t, got.res)
				assert.Equal(t, task.Cancelled, got.res.State)
				assert.ErrorIs(t, got.err, context.Canceled)
				assert.Equal(t, tc.byStore, errors.Is(got.err, flow.ErrCancelRequested), "the cause: %v", got.err)
				rec, err := st.Run(context.Background(), "r1")
				require.NoError(t, err)
				assert.Equal(t, "Cancelled", rec.State, "the end is recorded")
				assert.True(t, rec.Finished())
				assert.True(t, rec.CancelRequested.IsZero(), "the request is cleared with the run's end")
				assert.ErrorIs(t, st.RequestCancel(context.Background(), "r1"), store.ErrFinished)
			})
		})
	}
}

// TestCancelRequestOfAnUndrivenRunCancelsItsResume: a request made while
// nobody drove the run (its owner died) is carried out by the process
// that resumes it, at once, before any task runs.
func TestCancelRequestOfAnUndrivenRunCancelsItsResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
		bf := newBlockingFlow(t, "blocking")
		require.NoError(t, st.CreateRun(ctx, store.Run{ID: "orphan", Flow: "blocking", FlowHash: bf.f.Hash(),
			Params: []byte(`{}`), Owner: "dead", LeaseExpires: time.Now().Add(-time.Second), Created: time.Now()}))
		require.NoError(t, st.RequestCancel(ctx, "orphan"))
		start := time.Now()
		res, err := bf.f.Resume(ctx, newPool(t, 2), "orphan", flow.RunOptions{Store: st})
		assert.Equal(t, time.Duration(0), time.Since(start), "cancelled at once, without waiting for a poll")
		require.NotNil(t, res)
		assert.Equal(t, task.Cancelled, res.State)
		assert.ErrorIs(t, err, flow.ErrCancelRequested)
		assert.Equal(t, int32(0), bf.waits.Load(), "no task ran")
		rec, err := st.Run(ctx, "orphan")
		require.NoError(t, err)
		assert.Equal(t, "Cancelled", rec.State)
		assert.True(t, rec.CancelRequested.IsZero())
	})
}

// TestCancelRequestRealClock: the same on the real clock, with the run's
// tasks on a pool, under -race: the request stops the run within a few
// polls.
func TestCancelRequestRealClock(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testCancelRealClock(t, openStore(t, filepath.Join(t.TempDir(), "runs.db"))) })
	t.Run("Postgres", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), pgtest.Schema(t), postgres.Options{})
		require.NoError(t, err)
		defer st.Close()
		testCancelRealClock(t, st)
	})
}

func testCancelRealClock(t *testing.T, st store.Store) {
	bf := newBlockingFlow(t, "blocking")
	ex := newPool(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var res *flow.Result
	go func() {
		var err error
		res, err = bf.f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: "r1", CancelPoll: 10 * time.Millisecond})
		done <- err
	}()
	require.Eventually(t, func() bool { return bf.waits.Load() == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, st.RequestCancel(ctx, "r1"))
	err := <-done
	require.ErrorIs(t, err, flow.ErrCancelRequested)
	assert.Equal(t, task.Cancelled, res.State)
	assert.Equal(t, task.Success, res.Tasks[0].State, "prep had ended: it keeps its result")
	assert.Equal(t, task.Cancelled, res.Tasks[1].State)
	rec, err := st.Run(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, "Cancelled", rec.State)
	assert.True(t, rec.CancelRequested.IsZero())
}

// TestCancelRequestRacingTheEnd: a run that ends before its
// driver looks ends as it would have.
func TestCancelRequestRacingTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := openStore(t, filepath.Join(t.TempDir(), "runs.db"))
		p := newPipeline(t, "squares")
		p.before = func(context.Context) {
			require.NoError(t, st.RequestCancel(ctx, "r1"), "the run is still going")
		}
		res, err := p.f.Run(ctx, newPool(t, 2), flow.RunOptions{Store: st, RunID: "r1", Args: []flow.Arg{p.n.Set(3)}})
		require.NoError(t, err, "the run ended before a poll saw the request")
		assert.Equal(t, task.Success, res.State)
		rec, err := st.Run(ctx, "r1")
		require.NoError(t, err)
		assert.Equal(t, "Success", rec.State)
		assert.True(t, rec.CancelRequested.IsZero(), "the end cleared the request")
	})
}
