package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/store"
)

// requestCols reads a run's pending requests' times (0 for none) in a
// SELECT from flowline_runs.
const requestCols = `COALESCE((SELECT requested FROM flowline_requests WHERE flowline_requests.run_id = flowline_runs.id AND kind = 'cancel'), 0),
	COALESCE((SELECT requested FROM flowline_requests WHERE flowline_requests.run_id = flowline_runs.id AND kind = 'retry'), 0)`

// hasRetryRequest selects, in a WHERE on flowline_runs, the runs with a
// pending retry request.
const hasRetryRequest = `EXISTS (SELECT 1 FROM flowline_requests WHERE flowline_requests.run_id = flowline_runs.id AND kind = 'retry')`

type requestQueries struct {
	runState, insert, clear, deleteRequests string
}

func makeRequestQueries(rebind func(string) string, forUpdate string) requestQueries {
	q := requestQueries{
		// Locks the run's row (Postgres), so that a request and the
		// batch that ends the run are ordered: either the request comes
		// first and the end clears it, or it sees the run ended.
		runState:       `SELECT state, ended FROM flowline_runs WHERE id = ? ` + forUpdate,
		insert:         `INSERT INTO flowline_requests (run_id, kind, requested) VALUES (?, ?, ?) ON CONFLICT (run_id, kind) DO NOTHING`,
		clear:          `DELETE FROM flowline_requests WHERE run_id = ? AND kind = ?`,
		deleteRequests: `DELETE FROM flowline_requests WHERE run_id IN (` + deletable + `)`,
	}
	for _, p := range []*string{&q.runState, &q.insert, &q.clear, &q.deleteRequests} {
		*p = rebind(*p)
	}
	return q
}

// RequestCancel implements store.Store.
func (s *DB) RequestCancel(ctx context.Context, runID string) error {
	return s.request(ctx, runID, store.RequestCancelKind, func(state string, finished bool) error {
		if finished {
			return store.ErrFinished
		}
		return nil
	})
}

// RequestRetry implements store.Store.
func (s *DB) RequestRetry(ctx context.Context, runID string) error {
	return s.request(ctx, runID, store.RequestRetryKind, func(state string, finished bool) error {
		if !store.Retryable(state, finished) {
			return store.ErrNotRetryable
		}
		return nil
	})
}

// request records a request of kind for run id, in the transaction that
// reads (and on Postgres locks) the run, when refuse allows it.
func (s *DB) request(ctx context.Context, id, kind string, refuse func(state string, finished bool) error) error {
	return s.retry(ctx, func() error {
		return s.tx(ctx, func(tx *sql.Tx) error {
			var state string
			var ended int64
			err := tx.QueryRowContext(ctx, s.rq.runState, id).Scan(&state, &ended)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: run %s", store.ErrNotFound, id)
			}
			if err != nil {
				return err
			}
			if err := refuse(state, ended != 0); err != nil {
				return &store.RequestError{Request: kind, RunID: id, State: state, Err: err}
			}
			_, err = tx.ExecContext(ctx, s.rq.insert, id, kind, ns(time.Now()))
			return err
		})
	})
}

// fulfil returns the statement that clears the requests a run update settles, in the batch's
// transaction: a run that ends has nothing left to cancel; a run recorded
// as running again (a restart) has had its retry.
func (s *DB) fulfil(id string, u *store.RunUpdate) Stmt {
	kind := store.RequestRetryKind
	if !u.Ended.IsZero() {
		kind = store.RequestCancelKind
	}
	return Stmt{s.rq.clear, []any{id, kind}}
}
