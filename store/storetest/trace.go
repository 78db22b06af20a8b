package storetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/store"
)

// testRunTrace checks store.TraceStore: a run's trace context round-trips,
// is replaced by a second write, is empty for a run without one, is
// ErrNotFound for an unknown run, and goes with its run in DeleteRuns.
func testRunTrace(t *testing.T, s store.Store) {
	ts, ok := s.(store.TraceStore)
	require.True(t, ok, "the store implements store.TraceStore")
	c := ctx(t)
	const tp1 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const tp2 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	require.NoError(t, s.CreateRun(c, newRun("r2")))

	tp, st, err := ts.RunTrace(c, "r1")
	require.NoError(t, err)
	assert.Empty(t, tp)
	assert.Empty(t, st)

	require.NoError(t, ts.SetRunTrace(c, "r1", tp1, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"))
	tp, st, err = ts.RunTrace(c, "r1")
	require.NoError(t, err)
	assert.Equal(t, tp1, tp)
	assert.Equal(t, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", st)

	require.NoError(t, ts.SetRunTrace(c, "r1", tp2, ""))
	tp, st, err = ts.RunTrace(c, "r1")
	require.NoError(t, err)
	assert.Equal(t, tp2, tp, "a second write replaces the first")
	assert.Empty(t, st)

	tp, _, err = ts.RunTrace(c, "r2")
	require.NoError(t, err)
	assert.Empty(t, tp, "another run's trace is its own")

	assert.ErrorIs(t, ts.SetRunTrace(c, "nope", tp1, ""), store.ErrNotFound)
	_, _, err = ts.RunTrace(c, "nope")
	assert.ErrorIs(t, err, store.ErrNotFound)

	// DeleteRuns takes the trace with its run: a new run of the same id
	// starts without one.
	n, err := s.DeleteRuns(c, stamp(10)) // both were last updated at stamp(0)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	tp, _, err = ts.RunTrace(c, "r1")
	require.NoError(t, err)
	assert.Empty(t, tp, "the trace went with its run")
}
