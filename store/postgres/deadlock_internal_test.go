package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
)

// TestRenewAndHandOnNeverDeadlock runs one owner's heartbeat (RenewSlots,
// which locks every slot row of the owner) beside its pump handing slots
// on (SwapSlots, which locks the rows it hands on, one statement each).
// Both lock in slot order, so neither waits for the other in a cycle: a
// deadlock would be found by the server only after deadlock_timeout (a
// second by default), with the owner's slots stuck until then, and the
// retry would hide it. The store's retries are counted here instead.
func TestRenewAndHandOnNeverDeadlock(t *testing.T) {
	var deadlocks atomic.Int64
	counting := func(err error) (error, bool) {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "40P01" {
			deadlocks.Add(1)
		}
		return classify(err)
	}
	ctx := context.Background()
	s, err := open(ctx, pgtest.Schema(t), Options{}, counting)
	require.NoError(t, err)
	defer s.Close()

	const slots, rounds = 16, 150
	holders := make([]string, slots)
	for k := range holders {
		holders[k] = fmt.Sprintf("h%d-0", k)
	}
	got, err := s.ClaimSlots(ctx, "vendor", "", slots, "me", holders, time.Minute)
	require.NoError(t, err)
	require.Len(t, got, slots)
	holderOf := map[int]string{}
	for k, n := range got {
		holderOf[n] = holders[k]
	}

	var wg sync.WaitGroup
	var stop atomic.Bool
	wg.Go(func() { // the heartbeat, as often as it can
		for !stop.Load() {
			n, err := s.RenewSlots(ctx, "me", time.Minute)
			if !assert.NoError(t, err) || !assert.Equal(t, slots, n, "every slot is still the owner's") {
				return
			}
		}
	})
	for round := 1; round <= rounds; round++ {
		// Every slot handed on at once, in descending order: the order a
		// pump gets releases in is whatever order its tasks ended in.
		release := make([]store.Slot, 0, slots)
		for n := slots - 1; n >= 0; n-- {
			release = append(release, store.Slot{N: n, Holder: holderOf[n], Next: fmt.Sprintf("h%d-%d", n, round)})
		}
		_, err := s.SwapSlots(ctx, "vendor", "", slots, "me", release, nil, time.Minute)
		require.NoError(t, err)
		for _, r := range release {
			require.False(t, r.Expires.IsZero(), "slot %d was handed on", r.N)
			holderOf[r.N] = r.Next
		}
	}
	stop.Store(true)
	wg.Wait()
	assert.Zero(t, deadlocks.Load(), "deadlocks the store retried")
}
