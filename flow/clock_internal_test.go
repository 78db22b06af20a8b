package flow

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStepClockFollowsTheMonotonicClockFromAnAnchor: a new reading is the
// anchor (the last time.Now) plus the monotonic time since, for up to
// anchorFor; then the clock takes time.Now again. In a bubble the clocks
// do not drift, so every reading is time.Now's exactly.
func TestStepClockFollowsTheMonotonicClockFromAnAnchor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newStepClock()
		first := c.read()
		assert.Equal(t, time.Now(), first)
		assert.Equal(t, first, c.anchor)
		assert.Equal(t, first, c.read(), "a fresh reading serves twice")

		time.Sleep(anchorFor - time.Millisecond)
		c.fresh = false
		within := c.read()
		assert.Equal(t, first, c.anchor, "no new anchor within anchorFor")
		assert.True(t, time.Now().Round(0).Equal(within.Round(0)), "the wall clock too")
		assert.Equal(t, anchorFor-time.Millisecond, within.Sub(first))

		time.Sleep(time.Millisecond)
		c.fresh = false
		after := c.read()
		assert.Equal(t, after, c.anchor, "a new anchor at anchorFor")
		assert.Equal(t, time.Now(), after)
		assert.Equal(t, anchorFor, after.Sub(first))
	})
}

// TestStepClockRealClock: on the real clock, across new anchors, readings
// never go backwards and their wall clock stays within a few milliseconds
// of time.Now's (the two clocks drift apart by at most a slew's 500 ppm).
func TestStepClockRealClock(t *testing.T) {
	t.Parallel()
	c := newStepClock()
	last := c.read()
	anchors := 0
	for end := time.Now().Add(anchorFor + anchorFor/5); time.Now().Before(end); {
		c.fresh = false
		before := time.Now()
		got := c.read()
		after := time.Now()
		if got.Equal(c.anchor) {
			anchors++
		}
		require.False(t, got.Before(last), "reading %v before the last, %v", got, last)
		require.False(t, got.After(after), "reading after a later time.Now")
		require.WithinRange(t, got.Round(0), before.Round(0).Add(-5*time.Millisecond), after.Round(0).Add(5*time.Millisecond))
		last = got
		time.Sleep(50 * time.Microsecond)
	}
	assert.GreaterOrEqual(t, anchors, 1, "the loop should take a new anchor after anchorFor")
}

// BenchmarkStepClockRead is a new reading of the run's clock, as a task
// run takes one; BenchmarkTimeNow is what it replaces.
func BenchmarkStepClockRead(b *testing.B) {
	c := newStepClock()
	for b.Loop() {
		c.fresh = false
		c.read()
	}
}

func BenchmarkTimeNow(b *testing.B) {
	for b.Loop() {
		_ = time.Now()
	}
}
