package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowline-go/flowline/store"
)

var _ store.Limiter = (*DB)(nil)

// limitState is the limits' part of a DB: its statements, made on first
// use, and which slot and bucket rows are known to exist, so that the
// rows are inserted once per process instead of on every claim.
type limitState struct {
	once    sync.Once
	q       limitQueries
	mu      sync.Mutex
	slots   map[[2]string]int // (name, key) -> slots known to exist
	buckets map[[2]string]bool
}

type limitQueries struct {
	freeSlots, claimSlot, ownSlots, releaseSlot, renewSlots, heldSlots string
	handSlot                                                           string
	bucketRow, getBucket, setBucket                                    string
}

func (s *DB) limitQ() *limitQueries {
	l := &s.lim
	l.once.Do(func() {
		lock := ""
		if s.d.ForUpdate != "" {
			// Claimers skip the slots another claimer has locked instead of
			// queueing behind it: the hot rows of a limit do not serialize
			// its claimers.
			lock = s.d.ForUpdate + " SKIP LOCKED"
		}
		// Renewal locks the owner's rows in (name, key, slot) order, as
		// SwapSlots does (see there). A plain UPDATE locks them in the
		// order it finds them on disk.
		renew := `UPDATE flowline_limit_slots SET expires = ? WHERE owner = ?`
		if s.d.ForUpdate != "" {
			renew = `WITH mine AS MATERIALIZED (SELECT name, key, slot FROM flowline_limit_slots WHERE owner = ?
					ORDER BY name, key, slot ` + s.d.ForUpdate + `)
				UPDATE flowline_limit_slots AS s SET expires = ? FROM mine
				WHERE s.name = mine.name AND s.key = mine.key AND s.slot = mine.slot AND s.owner = ?`
		}
		l.q = limitQueries{
			freeSlots: `SELECT slot FROM flowline_limit_slots WHERE name = ? AND key = ? AND slot < ?
				AND (owner = '' OR expires < ?) ORDER BY slot LIMIT ? ` + lock,
			claimSlot:   `UPDATE flowline_limit_slots SET owner = ?, holder = ?, expires = ? WHERE name = ? AND key = ? AND slot = ?`,
			ownSlots:    `SELECT slot, holder FROM flowline_limit_slots WHERE name = ? AND key = ? AND owner = ?`,
			releaseSlot: `UPDATE flowline_limit_slots SET owner = '', holder = '', expires = 0 WHERE name = ? AND key = ? AND slot = ? AND owner = ? AND holder = ?`,
			handSlot:    `UPDATE flowline_limit_slots SET holder = ?, expires = ? WHERE name = ? AND key = ? AND slot = ? AND owner = ? AND holder = ?`,
			renewSlots:  renew,
			heldSlots: `SELECT slot, owner, holder, expires FROM flowline_limit_slots
				WHERE name = ? AND key = ? AND owner <> '' AND expires >= ? ORDER BY slot`,
			bucketRow: `INSERT INTO flowline_limit_buckets (name, key, tat) VALUES (?, ?, 0) ON CONFLICT (name, key) DO NOTHING`,
			getBucket: `SELECT tat FROM flowline_limit_buckets WHERE name = ? AND key = ? ` + s.d.ForUpdate,
			setBucket: `UPDATE flowline_limit_buckets SET tat = ? WHERE name = ? AND key = ?`,
		}
		for _, p := range []*string{&l.q.freeSlots, &l.q.claimSlot, &l.q.ownSlots, &l.q.releaseSlot, &l.q.handSlot, &l.q.renewSlots,
			&l.q.heldSlots, &l.q.bucketRow, &l.q.getBucket, &l.q.setBucket} {
			*p = s.rebind(*p)
		}
		l.slots = map[[2]string]int{}
		l.buckets = map[[2]string]bool{}
	})
	return &l.q
}

// seedSlots makes sure the rows of slots 0..limit-1 of (name, key) exist.
func (s *DB) seedSlots(ctx context.Context, name, key string, limit int) error {
	l := &s.lim
	k := [2]string{name, key}
	l.mu.Lock()
	have := l.slots[k]
	l.mu.Unlock()
	if have >= limit {
		return nil
	}
	err := s.retry(ctx, func() error {
		return s.tx(ctx, func(tx *sql.Tx) error {
			for from := 0; from < limit; from += 100 {
				to := min(from+100, limit)
				var b strings.Builder
				b.WriteString(`INSERT INTO flowline_limit_slots (name, key, slot, owner, holder, expires) VALUES `)
				args := make([]any, 0, 3*(to-from))
				for n := from; n < to; n++ {
					if n > from {
						b.WriteString(", ")
					}
					b.WriteString(`(?, ?, ?, '', '', 0)`)
					args = append(args, name, key, int64(n))
				}
				b.WriteString(` ON CONFLICT (name, key, slot) DO NOTHING`)
				if _, err := tx.ExecContext(ctx, s.rebind(b.String()), args...); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.slots[k] = max(l.slots[k], limit)
	l.mu.Unlock()
	return nil
}

// ClaimSlots implements store.Limiter.
func (s *DB) ClaimSlots(ctx context.Context, name, key string, limit int, owner string, holders []string, ttl time.Duration) ([]int, error) {
	return s.SwapSlots(ctx, name, key, limit, owner, nil, holders, ttl)
}

// SwapSlots implements store.Limiter.
func (s *DB) SwapSlots(ctx context.Context, name, key string, limit int, owner string, release []store.Slot, holders []string, ttl time.Duration) ([]int, error) {
	if limit <= 0 || ttl <= 0 || owner == "" {
		return nil, fmt.Errorf("store: ClaimSlots needs a positive limit and ttl and an owner (got %d, %v, %q)", limit, ttl, owner)
	}
	if slicesContain(holders, "") {
		return nil, errors.New("store: ClaimSlots with an empty holder")
	}
	if len(holders) == 0 && len(release) == 0 {
		return nil, nil
	}
	q := s.limitQ()
	if err := s.seedSlots(ctx, name, key, limit); err != nil {
		return nil, err
	}
	// The rows given back are updated in slot order, the order RenewSlots
	// locks them in, so that this owner's heartbeat and its hand-ons never
	// wait for each other in a cycle (a deadlock the server breaks only
	// after its deadlock_timeout, a second by default). The sort is
	// stable: one slot handed on twice (a to b, then b to c) must be
	// updated in that order.
	order := slotOrder(len(release), func(k int) int { return release[k].N })
	var got []int
	tries := 0
	err := s.retry(ctx, func() error {
		tries++
		got = got[:0]
		return s.tx(ctx, func(tx *sql.Tx) error {
			now := time.Now()
			for _, k := range order {
				r := release[k]
				var res sql.Result
				var err error
				if r.Next != "" {
					res, err = tx.ExecContext(ctx, q.handSlot, r.Next, ns(now.Add(ttl)), name, key, int64(r.N), owner, r.Holder)
				} else {
					res, err = tx.ExecContext(ctx, q.releaseSlot, name, key, int64(r.N), owner, r.Holder)
				}
				if err != nil {
					return err
				}
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				// Expires says whether it took effect (see store.Slot): a
				// slot that expired and went to another is not owner's.
				release[k].Expires = time.Time{}
				if n > 0 {
					release[k].Expires = now
					if r.Next != "" {
						release[k].Expires = now.Add(ttl)
					}
				}
			}
			if len(holders) == 0 {
				return nil
			}
			if tries > 1 {
				// The previous try may have committed before its answer was
				// lost: give back what it claimed for these holders, so that
				// nothing is claimed twice (or leaks, renewed by our
				// heartbeat forever), and claim afresh.
				mine, err := s.ownSlots(ctx, tx, q, name, key, owner)
				if err != nil {
					return err
				}
				for _, h := range holders {
					if n, ok := mine[h]; ok {
						if _, err := tx.ExecContext(ctx, q.releaseSlot, name, key, int64(n), owner, h); err != nil {
							return err
						}
					}
				}
			}
			rows, err := tx.QueryContext(ctx, q.freeSlots, name, key, int64(limit), ns(now), int64(len(holders)))
			if err != nil {
				return err
			}
			for rows.Next() {
				var n int64
				if err := rows.Scan(&n); err != nil {
					rows.Close()
					return err
				}
				got = append(got, int(n))
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			exp := ns(now.Add(ttl))
			for k, n := range got {
				if _, err := tx.ExecContext(ctx, q.claimSlot, owner, holders[k], exp, name, key, int64(n)); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return got, nil
}

// slotOrder returns the indexes 0..n-1 ordered by slot(k), the ones of
// one slot in their own order (a stable sort).
func slotOrder(n int, slot func(k int) int) []int {
	order := make([]int, n)
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(slot(a), slot(b)) })
	return order
}

func (s *DB) ownSlots(ctx context.Context, tx *sql.Tx, q *limitQueries, name, key, owner string) (map[string]int, error) {
	rows, err := tx.QueryContext(ctx, q.ownSlots, name, key, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var n int64
		var h string
		if err := rows.Scan(&n, &h); err != nil {
			return nil, err
		}
		out[h] = int(n)
	}
	return out, rows.Err()
}

func slicesContain(ss []string, v string) bool {
	for _, s := range ss {
		if s == v {
			return true
		}
	}
	return false
}

// ReleaseSlots implements store.Limiter.
func (s *DB) ReleaseSlots(ctx context.Context, name, key, owner string, slots []int, holders []string) error {
	if len(slots) != len(holders) {
		return fmt.Errorf("store: ReleaseSlots with %d slots and %d holders", len(slots), len(holders))
	}
	if len(slots) == 0 {
		return nil
	}
	q := s.limitQ()
	order := slotOrder(len(slots), func(k int) int { return slots[k] }) // as SwapSlots (see there)
	return s.retry(ctx, func() error {
		return s.tx(ctx, func(tx *sql.Tx) error {
			for _, k := range order {
				if _, err := tx.ExecContext(ctx, q.releaseSlot, name, key, int64(slots[k]), owner, holders[k]); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// RenewSlots implements store.Limiter.
func (s *DB) RenewSlots(ctx context.Context, owner string, ttl time.Duration) (int, error) {
	if owner == "" || ttl <= 0 {
		return 0, fmt.Errorf("store: RenewSlots needs an owner and a positive ttl (got %q, %v)", owner, ttl)
	}
	q := s.limitQ()
	var n int64
	err := s.retry(ctx, func() error {
		args := []any{ns(time.Now().Add(ttl)), owner}
		if s.d.ForUpdate != "" {
			args = []any{owner, args[0], owner}
		}
		res, err := s.db.ExecContext(ctx, q.renewSlots, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// Slots implements store.Limiter.
func (s *DB) Slots(ctx context.Context, name, key string) ([]store.Slot, error) {
	q := s.limitQ()
	var out []store.Slot
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, q.heldSlots, name, key, ns(time.Now()))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var sl store.Slot
			var n, exp int64
			if err := rows.Scan(&n, &sl.Owner, &sl.Holder, &exp); err != nil {
				return err
			}
			sl.N, sl.Expires = int(n), at(exp)
			out = append(out, sl)
		}
		return rows.Err()
	})
	return out, err
}

// TakeTokens implements store.Limiter.
func (s *DB) TakeTokens(ctx context.Context, name, key string, interval time.Duration, burst, n int) (int, time.Time, error) {
	times, next, err := s.ReserveTokens(ctx, name, key, interval, burst, n, 0)
	return len(times), next, err
}

// maxReserve bounds the tokens one ReserveTokens call hands out.
const maxReserve = 10_000

// ReserveTokens implements store.Limiter with the generic cell rate
// algorithm: the bucket is one number, its theoretical arrival time tat;
// a token can be had at the time a with max(tat, a)+interval <=
// a+burst·interval, and taking it moves tat on by one interval.
func (s *DB) ReserveTokens(ctx context.Context, name, key string, interval time.Duration, burst, n int, horizon time.Duration) ([]time.Time, time.Time, error) {
	if interval <= 0 || burst <= 0 || n <= 0 || horizon < 0 {
		return nil, time.Time{}, fmt.Errorf("store: taking tokens needs a positive interval, burst and n and a horizon of zero or more (got %v, %d, %d, %v)", interval, burst, n, horizon)
	}
	if int64(burst) > math.MaxInt64/4/int64(interval) || horizon > 24*time.Hour {
		return nil, time.Time{}, fmt.Errorf("store: taking tokens: a burst of %d at %v (or a horizon of %v) overflows", burst, interval, horizon)
	}
	q := s.limitQ()
	k := [2]string{name, key}
	s.lim.mu.Lock()
	seeded := s.lim.buckets[k]
	s.lim.mu.Unlock()
	var times []time.Time
	var next time.Time
	err := s.retry(ctx, func() error {
		return s.tx(ctx, func(tx *sql.Tx) error {
			if !seeded {
				if _, err := tx.ExecContext(ctx, q.bucketRow, name, key); err != nil {
					return err
				}
			}
			var tat int64
			if err := tx.QueryRowContext(ctx, q.getBucket, name, key).Scan(&tat); err != nil {
				return err
			}
			now := time.Now().UnixNano()
			iv, lead := int64(interval), int64(burst)*int64(interval)
			t := max(tat, now)
			times = times[:0]
			for len(times) < min(n, maxReserve) {
				a := max(t+iv-lead, now) // when this token can be had
				if a > now+int64(horizon) {
					break
				}
				times = append(times, time.Unix(0, a))
				t += iv
			}
			next = time.Time{}
			if len(times) < n {
				next = time.Unix(0, max(t+iv-lead, now))
			}
			if len(times) == 0 {
				return nil
			}
			_, err := tx.ExecContext(ctx, q.setBucket, t, name, key)
			return err
		})
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	if !seeded {
		s.lim.mu.Lock()
		s.lim.buckets[k] = true
		s.lim.mu.Unlock()
	}
	return times, next, nil
}
