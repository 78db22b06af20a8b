package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/flowline-go/flowline/store"
)

var _ store.TraceStore = (*DB)(nil)

// SetRunTrace implements store.TraceStore.
func (s *DB) SetRunTrace(ctx context.Context, id, traceParent, traceState string) error {
	return s.retry(ctx, func() error {
		return s.tx(ctx, func(tx *sql.Tx) error {
			var one int
			err := tx.QueryRowContext(ctx, s.rebind(`SELECT 1 FROM flowline_runs WHERE id = ?`), id).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: run %s", store.ErrNotFound, id)
			}
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, s.rebind(`INSERT INTO flowline_run_traces (run_id, traceparent, tracestate)
				VALUES (?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET traceparent = excluded.traceparent,
				tracestate = excluded.tracestate`), id, traceParent, traceState)
			return err
		})
	})
}

// RunTrace implements store.TraceStore.
func (s *DB) RunTrace(ctx context.Context, id string) (traceParent, traceState string, err error) {
	err = s.retry(ctx, func() error {
		var tp, ts sql.NullString
		err := s.db.QueryRowContext(ctx, s.rebind(`SELECT t.traceparent, t.tracestate FROM flowline_runs r
			LEFT JOIN flowline_run_traces t ON t.run_id = r.id WHERE r.id = ?`), id).Scan(&tp, &ts)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: run %s", store.ErrNotFound, id)
		}
		traceParent, traceState = tp.String, ts.String
		return err
	})
	return traceParent, traceState, err
}
