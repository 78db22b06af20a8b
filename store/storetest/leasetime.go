package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/store"
)

// testExpiredByBoundary: a lease is free from the instant it expires (an
// Acquire then succeeds), so RunFilter.LeaseExpiredBy at that instant
// selects the run, and a nanosecond before it does not.
func testExpiredByBoundary(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun("expiring")
	r.Owner, r.LeaseExpires = "dead", stamp(100)
	require.NoError(t, s.CreateRun(c, r))
	ids := func(by time.Time) []string {
		runs, err := s.Runs(c, store.RunFilter{Unfinished: true, LeaseExpiredBy: by})
		require.NoError(t, err)
		var out []string
		for _, r := range runs {
			out = append(out, r.ID)
		}
		return out
	}
	assert.Empty(t, ids(stamp(100).Add(-time.Nanosecond)), "a nanosecond before the expiry the lease is held")
	assert.Equal(t, []string{"expiring"}, ids(stamp(100)), "at the expiry instant the lease is free")
	assert.Equal(t, []string{"expiring"}, ids(stamp(101)))
}
