package sqlstore

import (
	"context"

	"github.com/flowline-go/flowline/store"
)

// reserveQueries are the reservations' statements.
type reserveQueries struct {
	upsert, list, delete string
}

func makeReserveQueries(rebind func(string) string) reserveQueries {
	return reserveQueries{
		// A reservation only grows: the larger bound, and its time, win.
		upsert: rebind(`INSERT INTO flowline_reservations (run_id, node, children, t) VALUES (?, ?, ?, ?)
			ON CONFLICT (run_id, node) DO UPDATE SET
			t = CASE WHEN excluded.children > flowline_reservations.children THEN excluded.t ELSE flowline_reservations.t END,
			children = CASE WHEN excluded.children > flowline_reservations.children THEN excluded.children ELSE flowline_reservations.children END`),
		list:   rebind(`SELECT node, children, t FROM flowline_reservations WHERE run_id = ? ORDER BY node`),
		delete: rebind(`DELETE FROM flowline_reservations WHERE run_id IN (` + deletable + `)`),
	}
}

// reserve returns the statements that write b's reservations.
func (s *DB) reserve(out []Stmt, b *store.Batch) []Stmt {
	for _, r := range b.Reserve {
		out = append(out, Stmt{s.res.upsert, []any{b.RunID, r.Node, int64(r.Children), ns(r.Time)}})
	}
	return out
}

// Reservations implements store.Store.
func (s *DB) Reservations(ctx context.Context, runID string) ([]store.Reservation, error) {
	var out []store.Reservation
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, s.res.list, runID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r store.Reservation
			var n, t int64
			if err := rows.Scan(&r.Node, &n, &t); err != nil {
				return err
			}
			r.Children, r.Time = int(n), at(t)
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}
