package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/store"
)

// limitChecks are the checks of store.Limiter, which every store of this
// module implements.
var limitChecks = []check{
	{"ClaimUpToLimit", testSlotsClaim},
	{"ReleaseFreesForHolderOnly", testSlotsRelease},
	{"ExpiredSlotIsTakenBack", testSlotsExpire},
	{"RenewKeepsSlots", testSlotsRenew},
	{"LowerLimitDrains", testSlotsLowerLimit},
	{"SwapGivesBackThenClaims", testSlotsSwap},
	{"KeysAreApart", testSlotsKeys},
	{"BadInput", testLimitsBadInput},
	{"ConcurrentClaimersNeverExceed", testSlotsConcurrent},
	{"TokensBurstThenInterval", testTokens},
	{"ConcurrentTakersNeverExceed", testTokensConcurrent},
	{"ReserveSpacesTokens", testReserve},
}

func limiter(t *testing.T, s store.Store) store.Limiter {
	t.Helper()
	l, ok := s.(store.Limiter)
	require.True(t, ok, "storetest: %T does not implement store.Limiter", s)
	return l
}

func holders(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func testSlotsClaim(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	got, err := l.ClaimSlots(c, "api", "", 2, "p1", holders("h", 3), time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{0, 1}, got, "two of three holders get the two slots")
	got, err = l.ClaimSlots(c, "api", "", 2, "p2", []string{"x"}, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, got, "no slot is free for another owner")
	held, err := l.Slots(c, "api", "")
	require.NoError(t, err)
	require.Len(t, held, 2)
	assert.Equal(t, 0, held[0].N)
	assert.Equal(t, "p1", held[0].Owner)
	assert.Equal(t, "h0", held[0].Holder)
	assert.Equal(t, "h1", held[1].Holder)
	assert.True(t, held[0].Expires.After(time.Now().Add(59*time.Minute)), "expires %v", held[0].Expires)
	got, err = l.ClaimSlots(c, "api", "", 2, "p1", nil, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, got, "no holders claim nothing")
}

func testSlotsRelease(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	got, err := l.ClaimSlots(c, "api", "k", 1, "p1", []string{"a"}, time.Hour)
	require.NoError(t, err)
	require.Equal(t, []int{0}, got)
	require.NoError(t, l.ReleaseSlots(c, "api", "k", "p1", []int{0}, []string{"other"}))
	require.NoError(t, l.ReleaseSlots(c, "api", "k", "p2", []int{0}, []string{"a"}))
	held, err := l.Slots(c, "api", "k")
	require.NoError(t, err)
	assert.Len(t, held, 1, "a release by another holder or owner does nothing")
	require.NoError(t, l.ReleaseSlots(c, "api", "k", "p1", []int{0}, []string{"a"}))
	held, err = l.Slots(c, "api", "k")
	require.NoError(t, err)
	assert.Empty(t, held)
	got, err = l.ClaimSlots(c, "api", "k", 1, "p2", []string{"b"}, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{0}, got, "a released slot is free")
	require.NoError(t, l.ReleaseSlots(c, "api", "k", "p1", nil, nil), "releasing nothing is fine")
	assert.Error(t, l.ReleaseSlots(c, "api", "k", "p1", []int{0}, nil), "slots and holders must pair up")
}

func testSlotsExpire(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	got, err := l.ClaimSlots(c, "api", "", 1, "dead", []string{"a"}, 150*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, []int{0}, got)
	got, err = l.ClaimSlots(c, "api", "", 1, "live", []string{"b"}, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, got, "an unexpired slot is held")
	time.Sleep(250 * time.Millisecond)
	held, err := l.Slots(c, "api", "")
	require.NoError(t, err)
	assert.Empty(t, held, "an expired slot is not held")
	got, err = l.ClaimSlots(c, "api", "", 1, "live", []string{"b"}, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{0}, got, "an expired slot is taken back")
	require.NoError(t, l.ReleaseSlots(c, "api", "", "dead", []int{0}, []string{"a"}))
	held, err = l.Slots(c, "api", "")
	require.NoError(t, err)
	require.Len(t, held, 1, "the dead owner's late release does not free the new holder's slot")
	assert.Equal(t, "live", held[0].Owner)
}

func testSlotsRenew(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	_, err := l.ClaimSlots(c, "a", "", 2, "p1", holders("h", 2), 150*time.Millisecond)
	require.NoError(t, err)
	_, err = l.ClaimSlots(c, "b", "x", 1, "p1", []string{"h"}, 150*time.Millisecond)
	require.NoError(t, err)
	_, err = l.ClaimSlots(c, "b", "y", 1, "p2", []string{"h"}, 150*time.Millisecond)
	require.NoError(t, err)
	n, err := l.RenewSlots(c, "p1", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "every slot of the owner, of every limit and key")
	time.Sleep(250 * time.Millisecond)
	got, err := l.ClaimSlots(c, "a", "", 2, "p3", []string{"z"}, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, got, "renewed slots stay held")
	got, err = l.ClaimSlots(c, "b", "y", 1, "p3", []string{"z"}, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{0}, got, "another owner's slot was not renewed")
	_, err = l.RenewSlots(c, "", time.Hour)
	assert.Error(t, err)
}

func testSlotsLowerLimit(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	got, err := l.ClaimSlots(c, "api", "", 3, "p", holders("h", 3), time.Hour)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.NoError(t, l.ReleaseSlots(c, "api", "", "p", got, holders("h", 3)))
	got, err = l.ClaimSlots(c, "api", "", 1, "p", holders("k", 3), time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{0}, got, "slots above a lowered limit are never claimed")
	got, err = l.ClaimSlots(c, "api", "", 4, "p", holders("m", 5), time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3}, got, "a raised limit has more slots")
}

func testSlotsKeys(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	for _, key := range []string{"c1", "c2", ""} {
		got, err := l.ClaimSlots(c, "customer", key, 1, "p", []string{"h-" + key}, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, []int{0}, got, "key %q has its own slot", key)
	}
	got, err := l.ClaimSlots(c, "other", "c1", 1, "p", []string{"h"}, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{0}, got, "another limit with the same key has its own slot")
	n, _, err := l.TakeTokens(c, "customer", "c1", time.Hour, 1, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, _, err = l.TakeTokens(c, "customer", "c2", time.Hour, 1, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a key has its own bucket")
}

func testLimitsBadInput(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	for _, tc := range []struct {
		limit  int
		owner  string
		hs     []string
		ttl    time.Duration
		reason string
	}{
		{0, "p", []string{"h"}, time.Hour, "a limit of zero"},
		{-1, "p", []string{"h"}, time.Hour, "a negative limit"},
		{1, "", []string{"h"}, time.Hour, "no owner"},
		{1, "p", []string{""}, time.Hour, "an empty holder"},
		{1, "p", []string{"h"}, 0, "a ttl of zero"},
	} {
		_, err := l.ClaimSlots(c, "api", "", tc.limit, tc.owner, tc.hs, tc.ttl)
		assert.Error(t, err, tc.reason)
	}
	for _, tc := range []struct {
		interval time.Duration
		burst, n int
	}{{0, 1, 1}, {time.Second, 0, 1}, {time.Second, 1, 0}, {-time.Second, 1, 1}, {time.Hour, 1 << 40, 1}} {
		_, _, err := l.TakeTokens(c, "rate", "", tc.interval, tc.burst, tc.n)
		assert.Error(t, err, "interval %v burst %d n %d", tc.interval, tc.burst, tc.n)
	}
	held, err := l.Slots(c, "api", "")
	require.NoError(t, err)
	assert.Empty(t, held, "refused claims hold nothing")
}

func testSlotsConcurrent(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	// Holders must overlap for an overbooking store to show more than
	// limit of them at once: each holds for well over a claim's time, also
	// on a loaded machine, where a claim can take tens of milliseconds.
	const limit, workers, rounds, hold = 3, 8, 6, 60 * time.Millisecond
	var holding, most, claims atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			owner := fmt.Sprintf("p%d", w)
			for r := range rounds {
				h := fmt.Sprintf("%s-%d", owner, r)
				got, err := l.ClaimSlots(c, "api", "", limit, owner, []string{h}, time.Hour)
				if err != nil {
					errs[w] = err
					return
				}
				if len(got) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				claims.Add(1)
				n := holding.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(hold)
				holding.Add(-1)
				if err := l.ReleaseSlots(c, "api", "", owner, got, []string{h}); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, most.Load(), int32(limit), "never more holders than the limit")
	assert.Positive(t, claims.Load())
	held, err := l.Slots(c, "api", "")
	require.NoError(t, err)
	assert.Empty(t, held, "every slot was released")
}

func testTokens(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	before := time.Now()
	n, next, err := l.TakeTokens(c, "vendor", "", time.Hour, 3, 5)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "a full bucket gives its burst")
	assert.True(t, next.After(before.Add(59*time.Minute)) && next.Before(time.Now().Add(time.Hour+time.Second)),
		"the next token comes an interval after the first was taken: %v", next.Sub(before))
	n, next2, err := l.TakeTokens(c, "vendor", "", time.Hour, 3, 1)
	require.NoError(t, err)
	assert.Zero(t, n, "an empty bucket gives nothing")
	assert.Equal(t, next, next2, "and says when the next token comes")
	const iv = 300 * time.Millisecond
	for try := 0; ; try++ {
		t0 := time.Now()
		n, _, err = l.TakeTokens(c, "fast", "", iv, 1, 1)
		require.NoError(t, err)
		if try == 0 {
			require.Equal(t, 1, n, "a new bucket is full")
		}
		n, next, err = l.TakeTokens(c, "fast", "", iv, 1, 1)
		require.NoError(t, err)
		if time.Since(t0) < iv {
			require.Zero(t, n, "no second token within the interval")
			break
		}
		// A slow machine: a token may have come meanwhile; again.
	}
	time.Sleep(time.Until(next) + 10*time.Millisecond)
	n, _, err = l.TakeTokens(c, "fast", "", iv, 1, 2)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "one token per interval, and a burst of one keeps no more")
}

func testTokensConcurrent(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	const interval, burst, workers = 50 * time.Millisecond, 5, 4
	var taken atomic.Int64
	start := time.Now()
	stop := start.Add(300 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				n, next, err := l.TakeTokens(c, "vendor", "", interval, burst, 2)
				if err != nil {
					errs[w] = err
					return
				}
				taken.Add(int64(n))
				if n == 0 {
					time.Sleep(min(time.Until(next), time.Until(stop)))
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	elapsed := time.Since(start)
	most := int64(burst) + int64(elapsed/interval) + 1
	assert.LessOrEqual(t, taken.Load(), most, "at most burst + elapsed/interval tokens in %v", elapsed)
	assert.Positive(t, taken.Load())
}

func testSlotsSwap(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	got, err := l.ClaimSlots(c, "api", "", 2, "p", []string{"a", "b"}, time.Hour)
	require.NoError(t, err)
	require.Equal(t, []int{0, 1}, got)
	rel := []store.Slot{{N: 1, Holder: "b"}, {N: 0, Holder: "wrong"}}
	got, err = l.SwapSlots(c, "api", "", 2, "p", rel, []string{"c", "d"}, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, got, "the slot given back goes to the first holder; a wrong holder gives nothing back")
	assert.False(t, rel[0].Expires.IsZero(), "a release that took effect says so")
	assert.True(t, rel[1].Expires.IsZero(), "a release of a slot not the holder's says so")
	held, err := l.Slots(c, "api", "")
	require.NoError(t, err)
	require.Len(t, held, 2)
	assert.Equal(t, "a", held[0].Holder)
	assert.Equal(t, "c", held[1].Holder)
	before := time.Now()
	rel = []store.Slot{{N: 0, Holder: "a", Next: "e"}, {N: 0, Holder: "e", Next: "f"}}
	got, err = l.SwapSlots(c, "api", "", 2, "p", rel, []string{"g"}, time.Hour)
	require.NoError(t, err)
	for k := range rel {
		assert.False(t, rel[k].Expires.Before(before.Add(time.Hour)), "a hand-on that took effect gives the lease's new end")
	}
	assert.Empty(t, got, "handed on, not freed: nothing for g")
	held, err = l.Slots(c, "api", "")
	require.NoError(t, err)
	require.Len(t, held, 2)
	assert.Equal(t, "f", held[0].Holder, "handed on twice, in order")
	// Many hand-ons of two slots in one swap, interleaved: each slot's go
	// in their order, whatever order the rows are written in.
	rel = nil
	last := [2]string{"f", "c"}
	for k := range 40 {
		n := 1 - k%2
		next := fmt.Sprintf("s%d-%d", n, k)
		rel = append(rel, store.Slot{N: n, Holder: last[n], Next: next})
		last[n] = next
	}
	_, err = l.SwapSlots(c, "api", "", 2, "p", rel, nil, time.Hour)
	require.NoError(t, err)
	for k := range rel {
		assert.False(t, rel[k].Expires.IsZero(), "hand-on %d (slot %d, %s to %s) took effect", k, rel[k].N, rel[k].Holder, rel[k].Next)
	}
	held, err = l.Slots(c, "api", "")
	require.NoError(t, err)
	require.Len(t, held, 2)
	assert.Equal(t, last[0], held[0].Holder, "slot 0 ends with its last hand-on's holder")
	assert.Equal(t, last[1], held[1].Holder, "slot 1 ends with its last hand-on's holder")
	rel = []store.Slot{{N: 1, Holder: last[1], Next: "x", Expires: time.Now()}}
	_, err = l.SwapSlots(c, "api", "", 2, "q", rel, nil, time.Hour)
	require.NoError(t, err)
	assert.True(t, rel[0].Expires.IsZero(), "a hand-on of a slot the owner lost (expired, claimed by another) says so")
	held, err = l.Slots(c, "api", "")
	require.NoError(t, err)
	assert.Equal(t, last[1], held[1].Holder, "another owner cannot hand a slot on")
	got, err = l.SwapSlots(c, "api", "", 2, "p", []store.Slot{{N: 0, Holder: last[0]}, {N: 1, Holder: last[1]}}, nil, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, got)
	held, err = l.Slots(c, "api", "")
	require.NoError(t, err)
	assert.Empty(t, held, "a swap with no holders only gives back")
}

func testReserve(t *testing.T, s store.Store) {
	l, c := limiter(t, s), ctx(t)
	const iv = time.Second
	before := time.Now()
	times, next, err := l.ReserveTokens(c, "vendor", "", iv, 2, 10, 3500*time.Millisecond)
	require.NoError(t, err)
	after := time.Now()
	require.Len(t, times, 5, "the burst of 2 now, then one a second for 3.5 s")
	assert.Equal(t, times[0], times[1], "the burst comes at once")
	assert.False(t, times[0].Before(before) || times[0].After(after), "now: %v", times[0])
	for k := 2; k < 5; k++ {
		assert.Equal(t, iv, times[k].Sub(times[k-1]), "token %d an interval after the one before", k)
	}
	assert.Equal(t, iv, next.Sub(times[4]), "the next comes an interval later")
	more, _, err := l.ReserveTokens(c, "vendor", "", iv, 2, 10, 4500*time.Millisecond)
	require.NoError(t, err)
	require.Len(t, more, 1, "a second later horizon reaches one more token")
	assert.Equal(t, next, more[0], "reserved tokens are spent: the next caller gets the next one")
	_, _, err = l.ReserveTokens(c, "vendor", "", iv, 2, 1, -time.Second)
	assert.Error(t, err, "a negative horizon")
}
