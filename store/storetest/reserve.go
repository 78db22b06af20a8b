package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/store"
)

// reserveChecks are Batch.Reserve and Store.Reservations.
var reserveChecks = []check{
	{"GrowOnlyPerNode", testReserveGrows},
	{"FencedAndAtomic", testReserveFenced},
	{"GoWithTheirRun", testReserveRetention},
}

// testReserveGrows: reservations round-trip with their times, one per
// node, ordered by node; a smaller one keeps the larger (and its time);
// applying one again changes nothing; a batch of only reservations is
// not empty; another run's are its own.
func testReserveGrows(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	require.NoError(t, s.CreateRun(c, newRun("r2")))
	rs, err := s.Reservations(c, "r1")
	require.NoError(t, err)
	assert.Empty(t, rs)
	b := &store.Batch{RunID: "r1", Reserve: []store.Reservation{{Node: "work", Children: 64, Time: stamp(1)}, {Node: "a", Children: 3, Time: stamp(2)}}}
	require.False(t, b.Empty(), "a batch of reservations writes something")
	require.NoError(t, s.Apply(c, b))
	require.NoError(t, s.Apply(c, b), "applied again")
	want := []store.Reservation{{Node: "a", Children: 3, Time: stamp(2)}, {Node: "work", Children: 64, Time: stamp(1)}}
	rs, err = s.Reservations(c, "r1")
	require.NoError(t, err)
	assertReservations(t, want, rs)

	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Reserve: []store.Reservation{{Node: "work", Children: 10, Time: stamp(5)}}}))
	rs, err = s.Reservations(c, "r1")
	require.NoError(t, err)
	assertReservations(t, want, rs) // a reservation never shrinks

	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Reserve: []store.Reservation{{Node: "work", Children: 200, Time: stamp(6)}}}))
	rs, err = s.Reservations(c, "r1")
	require.NoError(t, err)
	assertReservations(t, []store.Reservation{want[0], {Node: "work", Children: 200, Time: stamp(6)}}, rs)

	rs, err = s.Reservations(c, "r2")
	require.NoError(t, err)
	assert.Empty(t, rs, "another run's reservations are its own")
	rs, err = s.Reservations(c, "nope")
	require.NoError(t, err)
	assert.Empty(t, rs, "an unknown run has none")
	assert.ErrorIs(t, s.Apply(c, &store.Batch{RunID: "nope", Reserve: []store.Reservation{{Node: "w", Children: 1}}}), store.ErrNotFound)
}

func assertReservations(t *testing.T, want, got []store.Reservation) {
	t.Helper()
	require.Len(t, got, len(want))
	for k := range want {
		assert.Equal(t, want[k].Node, got[k].Node)
		assert.Equal(t, want[k].Children, got[k].Children, "node %s", want[k].Node)
		assert.True(t, want[k].Time.Equal(got[k].Time), "node %s: time %v, want %v", want[k].Node, got[k].Time, want[k].Time)
	}
}

// testReserveFenced: a reservation is written with the rest of its batch
// or not at all; a batch another owner's lease fences writes none.
func testReserveFenced(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun("r1")
	r.Owner, r.LeaseExpires = "a", time.Now().Add(time.Hour)
	require.NoError(t, s.CreateRun(c, r))
	err := s.Apply(c, &store.Batch{RunID: "r1", Owner: "b", Reserve: []store.Reservation{{Node: "work", Children: 8, Time: stamp(1)}}})
	require.ErrorIs(t, err, store.ErrLeaseHeld)
	rs, err := s.Reservations(c, "r1")
	require.NoError(t, err)
	assert.Empty(t, rs, "a fenced batch reserves nothing")
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Owner: "a",
		Attempts: []store.Attempt{{Label: "work[0]", N: 1, State: "Running", Start: stamp(2)}},
		Reserve:  []store.Reservation{{Node: "work", Children: 8, Time: stamp(1)}}}))
	rs, err = s.Reservations(c, "r1")
	require.NoError(t, err)
	assertReservations(t, []store.Reservation{{Node: "work", Children: 8, Time: stamp(1)}}, rs)
	as, err := s.Attempts(c, "r1")
	require.NoError(t, err)
	assert.Len(t, as, 1, "written with the rest of its batch")
}

// testReserveRetention: DeleteRuns takes a run's reservations with it: a
// new run of the same id starts without any.
func testReserveRetention(t *testing.T, s store.Store) {
	c := ctx(t)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	require.NoError(t, s.Apply(c, &store.Batch{RunID: "r1", Reserve: []store.Reservation{{Node: "work", Children: 8, Time: stamp(1)}}}))
	time.Sleep(20 * time.Millisecond)
	n, err := s.DeleteRuns(c, time.Now())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.NoError(t, s.CreateRun(c, newRun("r1")))
	rs, err := s.Reservations(c, "r1")
	require.NoError(t, err)
	assert.Empty(t, rs, "the reservations went with their run")
}
