package flow_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// startGate is a store whose batches that start an attempt of label
// check, before they are applied, that the task has not run yet, then
// fail (refuse) or apply and report failure (commit, then "unavailable":
// the outcome unknown to the writer, as the contract allows).
type startGate struct {
	store.Store
	label   string
	runs    *counter
	refuse  bool // fail without applying
	early   atomic.Int64
	tripped atomic.Bool
}

func (s *startGate) Apply(ctx context.Context, b *store.Batch) error {
	if s.tripped.Load() {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, errDown)
	}
	starts := false
	for _, a := range b.Attempts {
		starts = starts || (a.Label == s.label && a.State == "Running")
	}
	if !starts {
		return s.Store.Apply(ctx, b)
	}
	// Give an executor that was handed the call already every chance to
	// run it before its start is durable.
	time.Sleep(50 * time.Millisecond)
	s.early.Store(int64(s.runs.get(s.label)))
	s.tripped.Store(true)
	if !s.refuse {
		if err := s.Store.Apply(ctx, b); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, errDown)
}

// TestAttemptIsSubmittedOnlyOnceItsStartIsDurable: a crash before an
// attempt's start is durable leaves an attempt that never ran, so its
// number is free; the resume uses it, exactly once.
func TestAttemptIsSubmittedOnlyOnceItsStartIsDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	p := newPipeline(t, "squares")
	gate := &startGate{Store: openStore(t, path), label: "sum", runs: &p.runs, refuse: true}
	ex := newPool(t, 4)
	ctx := context.Background()
	_, err := p.f.Run(ctx, ex, flow.RunOptions{Store: gate, RunID: "r", Args: []flow.Arg{p.n.Set(3)}})
	require.ErrorIs(t, err, store.ErrUnavailable)
	assert.Zero(t, gate.early.Load(), "sum ran before its attempt's start was durable")
	assert.Zero(t, p.runs.get("sum"), "sum's start was never recorded: it must not have run")

	reader := openStore(t, path)
	res, err := p.f.Resume(ctx, ex, "r", flow.RunOptions{Store: reader})
	require.NoError(t, err)
	assert.Equal(t, 1, p.runs.get("sum"))
	tr, ok := res.Task("sum")
	require.True(t, ok)
	require.Len(t, tr.Attempts, 1)
	assert.Equal(t, 1, tr.Attempts[0].N, "attempt 1 never ran: its number is used once, now")
}

// TestAttemptNumbersNeverRepeatAfterACrash: once an attempt's start is
// durable its number is spent, whether or not the call was submitted
// before the crash; the resume's attempt on an executor that cannot
// collect is numbered after it.
func TestAttemptNumbersNeverRepeatAfterACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	p := newPipeline(t, "squares")
	gate := &startGate{Store: openStore(t, path), label: "sum", runs: &p.runs}
	ex := newPool(t, 4)
	ctx := context.Background()
	_, err := p.f.Run(ctx, ex, flow.RunOptions{Store: gate, RunID: "r", Args: []flow.Arg{p.n.Set(3)}})
	require.ErrorIs(t, err, store.ErrUnavailable)
	assert.Zero(t, gate.early.Load(), "sum ran before its attempt's start was durable")

	reader := openStore(t, path)
	as, err := reader.Attempts(ctx, "r")
	require.NoError(t, err)
	var sum []store.Attempt
	for _, a := range as {
		if a.Label == "sum" {
			sum = append(sum, a)
		}
	}
	require.Len(t, sum, 1)
	assert.Equal(t, 1, sum[0].N)
	assert.Equal(t, "Running", sum[0].State, "recorded in flight")

	res, err := p.f.Resume(ctx, ex, "r", flow.RunOptions{Store: reader})
	require.NoError(t, err)
	tr, ok := res.Task("sum")
	require.True(t, ok)
	require.Len(t, tr.Attempts, 2)
	assert.Equal(t, []int{1, 2}, []int{tr.Attempts[0].N, tr.Attempts[1].N}, "a durable number is never used again")
	assert.Equal(t, task.Success, tr.State)
	as, err = reader.Attempts(ctx, "r")
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, a := range as {
		key := fmt.Sprintf("%s/%d", a.Label, a.N)
		assert.False(t, seen[key], "attempt %s recorded twice", key)
		seen[key] = true
	}
	assert.True(t, seen["sum/2"])
}

// failAfter applies its first n batches, then fails every one.
type failAfter struct {
	store.Store
	n atomic.Int64
}

func (s *failAfter) Apply(ctx context.Context, b *store.Batch) error {
	if s.n.Add(-1) < 0 {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, errDown)
	}
	return s.Store.Apply(ctx, b)
}

// TestWideFanOutBeginsItsAttemptsAWindowAtATime: a durable run's fan-out
// wider than the window of attempts waiting for their start records
// completes with every attempt recorded once, and one whose store fails
// midway stops with every task run final, the held ones Cancelled.
func TestWideFanOutBeginsItsAttemptsAWindowAtATime(t *testing.T) {
	const n = 2000
	var runs counter
	one := task.New("one", func(_ context.Context, x int) (int, error) { runs.add(fmt.Sprint(x)); return x, nil }, task.Options{})
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	b := flow.New("wide", flow.Options{})
	out := flow.Map(b, one, flow.Const(xs))
	f, err := b.Build()
	require.NoError(t, err)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runs.db")
	st := openStore(t, path)
	res, err := f.Run(ctx, newPool(t, 8), flow.RunOptions{Store: st, RunID: "all"})
	require.NoError(t, err)
	v, ok := flow.Value(res, out)
	require.True(t, ok)
	assert.Equal(t, xs, v)
	as, err := st.Attempts(ctx, "all")
	require.NoError(t, err)
	assert.Len(t, as, n)
	for _, a := range as {
		assert.Equal(t, 1, a.N)
		assert.Equal(t, "Success", a.State)
	}
	assert.Equal(t, n, runs.total())

	broken := &failAfter{Store: st}
	broken.n.Store(3)
	res, err = f.Run(ctx, newPool(t, 8), flow.RunOptions{Store: broken, RunID: "broken"})
	require.ErrorIs(t, err, store.ErrUnavailable)
	cancelled := 0
	for _, tr := range res.Tasks {
		assert.True(t, tr.State.Final(), tr.Task)
		if tr.State == task.Cancelled {
			cancelled++
		}
	}
	assert.Greater(t, cancelled, 0, "the attempts not begun when the store failed end Cancelled")
	assert.Less(t, runs.total(), 2*n, "the run stopped")
}
