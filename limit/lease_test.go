package limit_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
	"github.com/flowline-go/flowline/store/sqlite"
)

// backend is a real store for the lease tests, with a raw connection to
// its tables (to play a lease that expired and was claimed elsewhere).
type backend struct {
	st  store.Limiter
	raw *sql.DB
}

func openBackend(t *testing.T, kind, where string) backend {
	switch kind {
	case "sqlite":
		st, err := sqlite.Open(t.Context(), where, sqlite.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		raw, err := sql.Open("sqlite", "file:"+where+"?_pragma=busy_timeout(10000)")
		require.NoError(t, err)
		t.Cleanup(func() { raw.Close() })
		return backend{st.DB, raw}
	default:
		st, err := postgres.Open(t.Context(), where, postgres.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		raw, err := sql.Open("pgx", where)
		require.NoError(t, err)
		t.Cleanup(func() { raw.Close() })
		return backend{st.DB, raw}
	}
}

// inBubble runs body in a synctest bubble for SQLite (exact time) and on
// the real clock for Postgres, with settle letting the Set's goroutines
// finish what they do.
func inBubble(t *testing.T, body func(t *testing.T, kind, where string, settle func())) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "runs.db")
		synctest.Test(t, func(t *testing.T) {
			body(t, "sqlite", path, func() { time.Sleep(time.Second); synctest.Wait() })
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.Schema(t)
		body(t, "postgres", dsn, func() { time.Sleep(time.Second) })
	})
}

// TestLostLeaseIsNotHandedOn: a slot whose lease expired (a renewal late
// under load) and that another process claimed is not this process's to
// hand on. The attempt it was handed to in memory before the store said
// so is unavoidable, but once the store said so the slot must leave this
// process: the next waiter waits for the other process's release instead
// of running as one holder more than the limit.
func TestLostLeaseIsNotHandedOn(t *testing.T) {
	inBubble(t, func(t *testing.T, kind, where string, settle func()) {
		b := openBackend(t, kind, where)
		lim := limit.Limit{Name: "api", Concurrency: 1}
		a, err := limit.New(limit.Options{Store: b.st, Owner: "a", Heartbeat: 10 * time.Second}, lim)
		require.NoError(t, err)
		defer a.Close()
		g := newGrants()
		key := []limit.Key{{Limit: "api"}}
		for _, n := range []string{"h0", "w1", "w2"} {
			h, _, err := a.Acquire(t.Context(), n, key, g.done(n))
			require.NoError(t, err)
			require.Nil(t, h)
		}
		settle()
		require.NotNil(t, g.hold("h0"))
		require.Nil(t, g.hold("w1"))
		// h0's lease expires unrenewed and process b claims slot 0.
		_, err = b.raw.ExecContext(t.Context(), `UPDATE flowline_limit_slots SET owner = 'b', holder = 'b1', expires = 9000000000000000000
			WHERE name = 'api' AND key = '' AND slot = 0`)
		require.NoError(t, err)
		g.hold("h0").Release() // handed on in memory to w1: the store has not said yet
		settle()
		require.NotNil(t, g.hold("w1"))
		g.hold("w1").Release()
		settle()
		held, err := b.st.Slots(t.Context(), "api", "")
		require.NoError(t, err)
		require.Len(t, held, 1)
		assert.Equal(t, "b", held[0].Owner)
		assert.Nil(t, g.hold("w2"), "w2 runs beside b1, which holds the only slot in the store")
		require.NoError(t, b.st.ReleaseSlots(t.Context(), "api", "", "b", []int{0}, []string{"b1"}))
		settle()
		require.NotNil(t, g.hold("w2"), "the slot b gave back")
		g.hold("w2").Release()
		require.NoError(t, a.Close())
	})
}

// TestStoreRateEveryWindow: three Sets share a store's token bucket (100
// per second, burst 2), taking tokens in waves with idle times between
// (the bucket refills) and from every process at once; in every window
// [t_i, t_j] of grant times, at most rate·(t_j−t_i) + burst tokens were
// granted (GCRA's bound, exact: the grant times are the bubble's).
func TestStoreRateEveryWindow(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testRateEveryWindow(t, "sqlite", filepath.Join(t.TempDir(), "runs.db")) })
	t.Run("postgres", func(t *testing.T) { testRateEveryWindow(t, "postgres", pgtest.Schema(t)) })
}

func testRateEveryWindow(t *testing.T, kind, where string) {
	synctest.Test(t, func(t *testing.T) {
		b := openBackend(t, kind, where)
		const rate, burst = 100, 2
		lim := limit.Limit{Name: "vendor", Rate: rate, Per: time.Second, Burst: burst}
		var sets []*limit.Set
		for i := range 3 {
			s, err := limit.New(limit.Options{Store: b.st, Owner: fmt.Sprint("p", i), Heartbeat: time.Second}, lim)
			require.NoError(t, err)
			defer s.Close()
			sets = append(sets, s)
		}
		g := newGrants()
		n := 0
		for wave, size := range []int{40, 1, 7, 60} {
			for k := range size {
				name := fmt.Sprint(wave, "/", k)
				_, _, err := sets[n%3].Acquire(t.Context(), name, []limit.Key{{Limit: "vendor"}}, g.done(name))
				require.NoError(t, err)
				n++
				if k%10 == 9 {
					time.Sleep(7 * time.Millisecond) // arrivals while the pumps reserve ahead
				}
			}
			time.Sleep(time.Duration(wave*300) * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		g.mu.Lock()
		var at []time.Time
		for name, err := range g.errs {
			require.NoError(t, err, name)
			at = append(at, g.at[name])
		}
		g.mu.Unlock()
		require.Len(t, at, n)
		slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
		for i := range at {
			for j := i; j < len(at); j++ {
				allowed := rate*at[j].Sub(at[i]).Seconds() + burst
				require.LessOrEqual(t, float64(j-i+1), allowed+1e-9, "%d tokens in %v", j-i+1, at[j].Sub(at[i]))
			}
		}
		for name := range g.got {
			g.got[name].Release()
		}
		for _, s := range sets {
			require.NoError(t, s.Close())
		}
	})
}

// TestHandOnsAreRecordedTogether: slots handed on in memory reach the
// store in the pump's next transaction, at its next poll at the latest,
// several hand-ons in one, not one transaction each; and a Set closed
// while a slot it handed on is held records that holder, not a free
// slot (the holder still runs: its lease just runs out).
func TestHandOnsAreRecordedTogether(t *testing.T) {
	inBubble(t, func(t *testing.T, kind, where string, settle func()) {
		b := openBackend(t, kind, where)
		lim := limit.Limit{Name: "api", Concurrency: 1}
		a, err := limit.New(limit.Options{Store: b.st, Owner: "a", Heartbeat: 10 * time.Second}, lim)
		require.NoError(t, err)
		defer a.Close()
		g := newGrants()
		key := []limit.Key{{Limit: "api"}}
		names := []string{"h0", "w1", "w2", "w3", "w4", "w5"}
		for _, n := range names {
			h, _, err := a.Acquire(t.Context(), n, key, g.done(n))
			require.NoError(t, err)
			require.Nil(t, h)
		}
		settle()
		require.NotNil(t, g.hold("h0"))
		holder := func() string {
			held, err := b.st.Slots(t.Context(), "api", "")
			require.NoError(t, err)
			require.Len(t, held, 1)
			assert.Equal(t, "a", held[0].Owner)
			return held[0].Holder
		}
		assert.Equal(t, "h0", holder())
		for k, n := range names[:3] {
			g.hold(n).Release()
			if kind == "sqlite" {
				synctest.Wait()
			}
			require.NotNil(t, g.hold(names[k+1]), "handed on in memory, at once")
		}
		if kind == "sqlite" { // exact in the bubble: no time has passed, so no poll came
			assert.Equal(t, "h0", holder(), "no transaction per hand-on")
		}
		time.Sleep(50 * time.Millisecond) // the default poll
		if kind == "sqlite" {
			synctest.Wait()
		} else {
			time.Sleep(200 * time.Millisecond)
		}
		assert.Equal(t, "w3", holder(), "the hand-ons recorded within a poll")
		g.hold("w3").Release() // to w4, in memory
		require.NoError(t, a.Close())
		assert.ErrorIs(t, g.err("w5"), limit.ErrClosed)
		assert.Equal(t, "w4", holder(), "Close records the hand-on: w4 holds the slot")
	})
}
