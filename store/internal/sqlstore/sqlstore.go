// Package sqlstore is the store.Store of both SQL stores (store/sqlite and
// store/postgres) over database/sql: one schema, one set of statements,
// with a small Dialect for what differs (DDL types, placeholders, row
// locks, how a driver error is classified).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowline-go/flowline/store"
)

// SchemaVersion is the version of the schema this code writes.
const SchemaVersion = 1

// Dialect is what one SQL engine does differently.
type Dialect struct {
	Name string
	// Schema creates the tables if they do not exist.
	Schema []string
	// Dollar rewrites ? placeholders to $1, $2, ... (Postgres).
	Dollar bool
	// ForUpdate is appended to the SELECTs that read a row a transaction
	// then updates ("FOR UPDATE" on Postgres; SQLite locks the database).
	ForUpdate string
	// MigrateLock, when not empty, runs first in the schema transaction,
	// so that concurrent openers do not race.
	MigrateLock string
	// Classify says what a driver error is: store.ErrCorrupt or
	// store.ErrUnavailable wrapped (retry = false), a transient error to
	// retry (retry = true), or the error unchanged.
	Classify func(err error) (out error, retry bool)
	// RetryFor bounds how long transient errors are retried before a
	// call fails with store.ErrUnavailable.
	RetryFor time.Duration
	// Arrays makes a batch's bulk writes one statement per table, each
	// column one array parameter (Postgres: unnest), instead of chunks of
	// multi-row VALUES.
	Arrays bool
	// Pipeline, when set, runs Apply's statements (pipelined, on
	// Postgres: two round trips whatever the batch's size) instead of one
	// database/sql round trip per statement.
	Pipeline PipelineFunc
}

// DB is a store.Store over a *sql.DB.
type DB struct {
	db     *sql.DB
	d      Dialect
	closed atomic.Bool
	q      queries
	lim    limitState // store.Limiter's statements and seeded rows (limits.go)
	rq     requestQueries
	res    reserveQueries
	texts  sync.Map // bulk statements' texts by table and rows (bulk.go)
}

var _ store.Store = (*DB)(nil)

// Open sets the schema up on db (creating it, or checking that its version
// is not newer than SchemaVersion) and returns the store. The store owns
// db: Close closes it.
func Open(ctx context.Context, db *sql.DB, d Dialect) (*DB, error) {
	s := &DB{db: db, d: d}
	s.q = makeQueries(s.rebind, d.ForUpdate)
	s.rq = makeRequestQueries(s.rebind, d.ForUpdate)
	s.res = makeReserveQueries(s.rebind)
	err := s.retry(ctx, func() error {
		return s.tx(ctx, func(tx *sql.Tx) error {
			if d.MigrateLock != "" {
				if _, err := tx.ExecContext(ctx, d.MigrateLock); err != nil {
					return err
				}
			}
			for _, stmt := range d.Schema {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			var v string
			err := tx.QueryRowContext(ctx, s.rebind(`SELECT value FROM flowline_meta WHERE key = ?`), "schema_version").Scan(&v)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				_, err = tx.ExecContext(ctx, s.rebind(`INSERT INTO flowline_meta (key, value) VALUES (?, ?)`),
					"schema_version", strconv.Itoa(SchemaVersion))
				return err
			case err != nil:
				return err
			}
			have, err := strconv.Atoi(v)
			if err != nil {
				return &store.CorruptError{What: "schema version", Err: fmt.Errorf("not a number: %q", v)}
			}
			if have > SchemaVersion {
				return &store.SchemaError{Have: have, Want: SchemaVersion}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// SQL returns the underlying database, for tests that damage it on purpose.
func (s *DB) SQL() *sql.DB { return s.db }

func (s *DB) rebind(q string) string {
	if !s.d.Dollar {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// retry runs fn again while it fails with a transient error, for at most
// the dialect's RetryFor, then fails with store.ErrUnavailable.
func (s *DB) retry(ctx context.Context, fn func() error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	var deadline time.Time
	delay := 5 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if s.closed.Load() {
			return store.ErrClosed
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return fmt.Errorf("store: %s: %w", s.d.Name, context.Cause(ctx))
			}
		}
		if isStoreError(err) {
			return err
		}
		out, again := s.d.Classify(err)
		if !again {
			return out
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(s.d.RetryFor)
		}
		if !now.Before(deadline) {
			return fmt.Errorf("%w: %s: gave up after %v: %v", store.ErrUnavailable, s.d.Name, s.d.RetryFor, err)
		}
		t := time.NewTimer(min(delay, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("store: %s: %w (while retrying: %v)", s.d.Name, context.Cause(ctx), err)
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

func isStoreError(err error) bool {
	for _, e := range []error{store.ErrNotFound, store.ErrExists, store.ErrLeaseHeld, store.ErrSchemaNewer,
		store.ErrCorrupt, store.ErrUnavailable, store.ErrClosed, store.ErrFlowChanged, store.ErrFinished,
		store.ErrNotRetryable} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ns and at convert times to the stored form (Unix nanoseconds, 0 for the
// zero time) and back.
func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func at(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Close closes the database. It is idempotent.
func (s *DB) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.db.Close()
}

// CreateRun implements store.Store.
func (s *DB) CreateRun(ctx context.Context, run store.Run) error {
	if run.ID == "" {
		return errors.New("store: CreateRun with an empty run id")
	}
	if run.Created.IsZero() {
		run.Created = time.Now()
	}
	if run.State == "" {
		run.State = "Running"
	}
	tries := 0
	return s.retry(ctx, func() error {
		tries++
		return s.tx(ctx, func(tx *sql.Tx) error {
			var owner string
			var created int64
			err := tx.QueryRowContext(ctx, s.q.runOwner, run.ID).Scan(&owner, &created)
			if err == nil {
				if tries > 1 && owner == run.Owner && created == ns(run.Created) {
					return nil // our own insert, committed before the connection broke
				}
				return fmt.Errorf("%w: run %s", store.ErrExists, run.ID)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			_, err = tx.ExecContext(ctx, s.q.insertRun, run.ID, run.Flow, run.FlowHash, nonNil(run.Params), run.State,
				run.ErrClass, run.ErrMessage, run.Owner, ns(run.LeaseExpires), ns(run.Created), ns(run.Created), ns(run.Ended))
			return err
		})
	})
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

const runCols = `id, flow, flow_hash, params, state, err_class, err_message, owner, lease_expires, created, updated, ended`

// runSelect is runCols and the times of the run's pending requests.
const runSelect = runCols + `, ` + requestCols

func scanRun(sc interface{ Scan(...any) error }) (store.Run, error) {
	var r store.Run
	var lease, created, updated, ended, cancelReq, retryReq int64
	err := sc.Scan(&r.ID, &r.Flow, &r.FlowHash, &r.Params, &r.State, &r.ErrClass, &r.ErrMessage, &r.Owner,
		&lease, &created, &updated, &ended, &cancelReq, &retryReq)
	r.LeaseExpires, r.Created, r.Updated, r.Ended = at(lease), at(created), at(updated), at(ended)
	r.CancelRequested, r.RetryRequested = at(cancelReq), at(retryReq)
	return r, err
}

// Run implements store.Store.
func (s *DB) Run(ctx context.Context, id string) (store.Run, error) {
	var r store.Run
	err := s.retry(ctx, func() error {
		var err error
		r, err = scanRun(s.db.QueryRowContext(ctx, s.q.getRun, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: run %s", store.ErrNotFound, id)
		}
		return err
	})
	return r, err
}

// Runs implements store.Store.
func (s *DB) Runs(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	q := `SELECT ` + runSelect + ` FROM flowline_runs WHERE 1=1`
	var args []any
	if f.Flow != "" {
		q += ` AND flow = ?`
		args = append(args, f.Flow)
	}
	if f.Unfinished {
		q += ` AND ended = 0`
	}
	if !f.LeaseExpiredBy.IsZero() {
		q += ` AND (owner = '' OR lease_expires <= ?)`
		args = append(args, ns(f.LeaseExpiredBy))
	}
	if len(f.States) > 0 {
		q += ` AND state IN (?` + strings.Repeat(`, ?`, len(f.States)-1) + `)`
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	if !f.Since.IsZero() {
		q += ` AND created >= ?`
		args = append(args, ns(f.Since))
	}
	if !f.Until.IsZero() {
		q += ` AND created < ?`
		args = append(args, ns(f.Until))
	}
	if f.RetryRequested {
		q += ` AND ` + hasRetryRequest
	}
	if f.Newest {
		q += ` ORDER BY created DESC, id DESC`
	} else {
		q += ` ORDER BY created, id`
	}
	if f.Limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	q = s.rebind(q)
	var out []store.Run
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// Apply implements store.Store.
func (s *DB) Apply(ctx context.Context, b *store.Batch) error {
	if b == nil || b.RunID == "" {
		return errors.New("store: Apply with no run id")
	}
	return s.retry(ctx, func() error {
		now := time.Now()
		lease, check := s.leaseCheck(b, now)
		writes := s.writes(b, now)
		if s.d.Pipeline != nil {
			return s.d.Pipeline(ctx, s.db, lease, check, writes)
		}
		return s.tx(ctx, func(tx *sql.Tx) error {
			var owner string
			var expires int64
			err := tx.QueryRowContext(ctx, lease.SQL, lease.Args...).Scan(&owner, &expires)
			found := err == nil
			if errors.Is(err, sql.ErrNoRows) {
				err = nil
			}
			if err != nil {
				return err
			}
			if err := check(found, owner, expires); err != nil {
				return err
			}
			for _, w := range writes {
				if _, err := tx.ExecContext(ctx, w.SQL, w.Args...); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// leaseCheck returns the statement that reads (and locks) b's run's lease
// and the check of its row: the run must exist, and b.Owner, if set, must
// hold the lease or find it free.
func (s *DB) leaseCheck(b *store.Batch, now time.Time) (Stmt, func(found bool, owner string, expires int64) error) {
	return Stmt{SQL: s.q.runLease, Args: []any{b.RunID}}, func(found bool, owner string, expires int64) error {
		if !found {
			return fmt.Errorf("%w: run %s", store.ErrNotFound, b.RunID)
		}
		if b.Owner != "" && owner != "" && owner != b.Owner && expires > ns(now) {
			return &store.LeaseError{What: "run " + b.RunID, Holder: owner, Expires: at(expires)}
		}
		return nil
	}
}

// writes returns b's writes as statements, in order.
func (s *DB) writes(b *store.Batch, now time.Time) []Stmt {
	var out []Stmt
	if u := b.Run; u != nil {
		out = append(out, Stmt{s.q.updateRun, []any{u.State, u.ErrClass, u.ErrMessage, ns(u.Ended), ns(now), b.RunID}},
			s.fulfil(b.RunID, u))
	} else {
		out = append(out, Stmt{s.q.touchRun, []any{ns(now), b.RunID}})
	}
	type attemptKey struct {
		label string
		n     int
	}
	out = s.bulk(out, bulkTaskRuns, lastPerKey(len(b.TaskRuns), func(i int) string { return b.TaskRuns[i].Label }), func(i int) []any {
		t := &b.TaskRuns[i]
		return []any{b.RunID, t.Label, t.State, t.Value, t.ErrClass, t.ErrMessage, t.Attempts, ns(t.Start), ns(t.End), t.CacheKey}
	})
	out = s.bulk(out, bulkAttempts, lastPerKey(len(b.Attempts), func(i int) attemptKey { return attemptKey{b.Attempts[i].Label, b.Attempts[i].N} }), func(i int) []any {
		a := &b.Attempts[i]
		return []any{b.RunID, a.Label, a.N, a.State, ns(a.Start), ns(a.End), a.ErrClass, a.ErrMessage, a.Worker}
	})
	out = s.bulk(out, bulkChanges, lastPerKey(len(b.Changes), func(i int) int64 { return b.Changes[i].Seq }), func(i int) []any {
		c := &b.Changes[i]
		return []any{b.RunID, c.Seq, c.Label, c.Attempt, c.From, c.To, c.ErrClass, c.ErrMessage, ns(c.Time)}
	})
	out = s.bulk(out, bulkCache, lastPerKey(len(b.Cache), func(i int) string { return b.Cache[i].Key }), func(i int) []any {
		e := &b.Cache[i]
		created := e.Created
		if created.IsZero() {
			created = now
		}
		return []any{e.Key, nonNil(e.Value), ns(created), ns(e.Expires)}
	})
	for _, key := range b.Unclaim {
		out = append(out, Stmt{s.q.unclaim, []any{key, b.Owner}}, Stmt{s.q.dropPlaceholder, []any{key}})
	}
	return s.reserve(out, b)
}

// TaskRuns implements store.Store.
func (s *DB) TaskRuns(ctx context.Context, runID string) ([]store.TaskRun, error) {
	var out []store.TaskRun
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, s.q.taskRuns, runID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t := store.TaskRun{RunID: runID}
			var start, end int64
			if err := rows.Scan(&t.Label, &t.State, &t.Value, &t.ErrClass, &t.ErrMessage, &t.Attempts, &start, &end, &t.CacheKey); err != nil {
				return err
			}
			t.Start, t.End = at(start), at(end)
			out = append(out, t)
		}
		return rows.Err()
	})
	return out, err
}

// Attempts implements store.Store.
func (s *DB) Attempts(ctx context.Context, runID string) ([]store.Attempt, error) {
	var out []store.Attempt
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, s.q.attempts, runID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a := store.Attempt{RunID: runID}
			var start, end int64
			if err := rows.Scan(&a.Label, &a.N, &a.State, &start, &end, &a.ErrClass, &a.ErrMessage, &a.Worker); err != nil {
				return err
			}
			a.Start, a.End = at(start), at(end)
			out = append(out, a)
		}
		return rows.Err()
	})
	return out, err
}

// Changes implements store.Store.
func (s *DB) Changes(ctx context.Context, runID string) ([]store.Change, error) {
	var out []store.Change
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, s.q.changes, runID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c := store.Change{RunID: runID}
			var t int64
			if err := rows.Scan(&c.Seq, &c.Label, &c.Attempt, &c.From, &c.To, &c.ErrClass, &c.ErrMessage, &t); err != nil {
				return err
			}
			c.Time = at(t)
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// Acquire implements store.Store.
func (s *DB) Acquire(ctx context.Context, id, owner string, ttl time.Duration) (store.Lease, error) {
	if owner == "" || ttl <= 0 {
		return store.Lease{}, fmt.Errorf("store: Acquire needs an owner and a positive ttl (got %q, %v)", owner, ttl)
	}
	var l store.Lease
	err := s.retry(ctx, func() error {
		return s.tx(ctx, func(tx *sql.Tx) error {
			now := time.Now()
			var holder string
			var expires int64
			err := tx.QueryRowContext(ctx, s.q.runLease, id).Scan(&holder, &expires)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: run %s", store.ErrNotFound, id)
			}
			if err != nil {
				return err
			}
			if holder != "" && holder != owner && expires > ns(now) {
				return &store.LeaseError{What: "run " + id, Holder: holder, Expires: at(expires)}
			}
			l = store.Lease{Owner: owner, Expires: now.Add(ttl)}
			_, err = tx.ExecContext(ctx, s.q.setLease, owner, ns(l.Expires), ns(now), id)
			return err
		})
	})
	return l, err
}

// Release implements store.Store.
func (s *DB) Release(ctx context.Context, id, owner string) error {
	return s.retry(ctx, func() error {
		_, err := s.db.ExecContext(ctx, s.q.release, id, owner)
		return err
	})
}

// Claim implements store.Store.
func (s *DB) Claim(ctx context.Context, key, owner string, ttl time.Duration) (store.CacheEntry, bool, error) {
	if owner == "" || ttl <= 0 || key == "" {
		return store.CacheEntry{}, false, fmt.Errorf("store: Claim needs a key, an owner and a positive ttl (got %q, %q, %v)", key, owner, ttl)
	}
	var e store.CacheEntry
	var hit bool
	err := s.retry(ctx, func() error {
		hit = false
		return s.tx(ctx, func(tx *sql.Tx) error {
			now := time.Now()
			// A placeholder row first, so that concurrent claimers of a
			// new key meet on one row lock instead of both inserting.
			if _, err := tx.ExecContext(ctx, s.q.placeholder, key); err != nil {
				return err
			}
			var value []byte
			var created, expires, claimExpires int64
			var holder string
			if err := tx.QueryRowContext(ctx, s.q.getCache, key).Scan(&value, &created, &expires, &holder, &claimExpires); err != nil {
				return err
			}
			if value != nil && (expires == 0 || expires > ns(now)) {
				e, hit = store.CacheEntry{Key: key, Value: value, Created: at(created), Expires: at(expires)}, true
				return nil
			}
			if holder != "" && holder != owner && claimExpires > ns(now) {
				return &store.LeaseError{What: "cache key " + key, Holder: holder, Expires: at(claimExpires)}
			}
			_, err := tx.ExecContext(ctx, s.q.claim, owner, ns(now.Add(ttl)), key)
			return err
		})
	})
	return e, hit, err
}

// CacheEntries implements store.Store.
func (s *DB) CacheEntries(ctx context.Context, prefix string) ([]store.CacheEntry, error) {
	var out []store.CacheEntry
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, s.q.cacheEntries, int64(len(prefix)), prefix, ns(time.Now()))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e store.CacheEntry
			var created, expires int64
			if err := rows.Scan(&e.Key, &e.Value, &created, &expires); err != nil {
				return err
			}
			e.Created, e.Expires = at(created), at(expires)
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// Invalidate implements store.Store.
func (s *DB) Invalidate(ctx context.Context, prefix string) (int, error) {
	var n int64
	err := s.retry(ctx, func() error {
		return s.tx(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, s.q.countCache, int64(len(prefix)), prefix).Scan(&n); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.q.invalidate, int64(len(prefix)), prefix)
			return err
		})
	})
	return int(n), err
}

// DeleteRuns implements store.Store.
func (s *DB) DeleteRuns(ctx context.Context, cutoff time.Time) (int, error) {
	var n int
	err := s.retry(ctx, func() error {
		return s.tx(ctx, func(tx *sql.Tx) error {
			now, c := ns(time.Now()), ns(cutoff)
			for _, q := range []string{s.q.deleteTaskRuns, s.q.deleteAttempts, s.q.deleteChanges, s.rq.deleteRequests, s.q.deleteTraces, s.res.delete} {
				if _, err := tx.ExecContext(ctx, q, c, now); err != nil {
					return err
				}
			}
			res, err := tx.ExecContext(ctx, s.q.deleteRuns, c, now)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			n = int(k)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, s.q.deleteExpiredCache, c)
			return err
		})
	})
	return n, err
}
