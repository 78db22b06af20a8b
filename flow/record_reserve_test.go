package flow_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// reserveGate applies batches up to and including the first that makes a
// reservation durable and the one after it, then waits (the calls
// submitted under the reservation run meanwhile) and fails that batch and
// every later one: the store dies while reserved attempts run whose start
// records are not durable, as a crash would leave them.
type reserveGate struct {
	store.Store
	reserved atomic.Bool
	tripped  atomic.Bool
}

func (s *reserveGate) Apply(ctx context.Context, b *store.Batch) error {
	if s.tripped.Load() {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, errDown)
	}
	if !s.reserved.Load() {
		if len(b.Reserve) > 0 {
			s.reserved.Store(true)
		}
		return s.Store.Apply(ctx, b)
	}
	time.Sleep(50 * time.Millisecond)
	s.tripped.Store(true)
	return fmt.Errorf("%w: %w", store.ErrUnavailable, errDown)
}

// TestReservedAttemptsAreNeverNumberedAgain: a wide fan-out's children
// past the first window go to the executor under a durable reservation,
// before their own start records are durable; when the run dies there,
// children ran of which the store knows nothing but the reservation, and
// the resume runs them again as attempt 2, never as 1 again: no child
// runs twice under one attempt number, and the others keep attempt 1.
func TestReservedAttemptsAreNeverNumberedAgain(t *testing.T) {
	const n = 300
	var ran counter // "x#attempt"
	work := task.New("work", func(ctx context.Context, x int) (int, error) {
		id, ok := executor.CallInfo(ctx)
		if !ok {
			return 0, fmt.Errorf("no call identity")
		}
		ran.add(fmt.Sprintf("%d#%d", x, id.Attempt))
		return x, nil
	}, task.Options{})
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	b := flow.New("reserved", flow.Options{})
	out := flow.Map(b, work, flow.Const(xs))
	f, err := b.Build()
	require.NoError(t, err)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runs.db")
	gate := &reserveGate{Store: openStore(t, path)}
	_, err = f.Run(ctx, newPool(t, 8), flow.RunOptions{Store: gate, RunID: "r"})
	require.ErrorIs(t, err, store.ErrUnavailable)

	st := openStore(t, path)
	as, err := st.Attempts(ctx, "r")
	require.NoError(t, err)
	recorded := map[string]bool{}
	for _, a := range as {
		recorded[a.Label] = true
	}
	rs, err := st.Reservations(ctx, "r")
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, "work", rs[0].Node)
	unrecorded := 0
	for x := range n {
		if ran.get(fmt.Sprintf("%d#1", x)) > 0 && !recorded[fmt.Sprintf("work[%d]", x)] {
			unrecorded++
			assert.Less(t, x, rs[0].Children, "work[%d] ran without a record: the reservation covers it", x)
		}
	}
	require.Positive(t, unrecorded, "children ran under the reservation before their start records were durable")

	res, err := f.Resume(ctx, newPool(t, 8), "r", flow.RunOptions{Store: st})
	require.NoError(t, err)
	v, ok := flow.Value(res, out)
	require.True(t, ok)
	assert.Equal(t, xs, v)
	for key, k := range ran.n {
		assert.Equal(t, 1, k, "%s ran %d times: an attempt number used twice", key, k)
	}
	for _, tr := range res.Tasks {
		if !strings.HasPrefix(tr.Task, "work[") {
			continue
		}
		var x int
		_, err := fmt.Sscanf(tr.Task, "work[%d]", &x)
		require.NoError(t, err)
		last := tr.Attempts[len(tr.Attempts)-1].N
		switch {
		case ran.get(fmt.Sprintf("%d#2", x)) > 0:
			assert.Equal(t, 2, last, tr.Task)
			assert.Less(t, x, rs[0].Children, "%s: only a reserved child counts attempt 1 as lost", tr.Task)
		default:
			assert.Equal(t, 1, last, tr.Task)
		}
	}
}
