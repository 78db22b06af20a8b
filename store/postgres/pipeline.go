package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/flowline-go/flowline/store/internal/sqlstore"
)

// pipeline runs one Apply in two round trips, whatever its size: BEGIN,
// the lease's SELECT ... FOR UPDATE and every write go out together as
// one pgx batch (pipelined: the server runs them in order without waiting
// for the client between them); then, once the lease's row says the
// writer may write and every statement succeeded, COMMIT, else ROLLBACK.
// Through database/sql the same Apply costs a round trip per statement
// (BEGIN, the lease, the run's row, each chunk of task runs, attempts and
// changes, COMMIT).
func pipeline(ctx context.Context, db *sql.DB, lease sqlstore.Stmt, check func(found bool, owner string, expires int64) error, writes []sqlstore.Stmt) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store/postgres: driver connection is a %T, not pgx's", dc)
		}
		c := sc.Conn()
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(lease.SQL, lease.Args...)
		for _, w := range writes {
			b.Queue(w.SQL, w.Args...)
		}
		br := c.SendBatch(ctx, b)
		_, err := br.Exec()
		var first error // the first failure: check's or a statement's
		if err != nil {
			first = err
		} else {
			var owner string
			var expires int64
			err := br.QueryRow().Scan(&owner, &expires)
			found := err == nil
			if errors.Is(err, pgx.ErrNoRows) {
				err = nil
			}
			if err != nil {
				first = err
			} else {
				first = check(found, owner, expires)
			}
			for range writes {
				if _, err := br.Exec(); err != nil && first == nil {
					first = err
				}
			}
		}
		if err := br.Close(); err != nil && first == nil {
			first = err
		}
		if first != nil {
			if !c.IsClosed() {
				// Leave the connection clean for its next user; a
				// failed statement has aborted the transaction already.
				_, _ = c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			}
			return first
		}
		// COMMIT of a transaction that failed would answer ROLLBACK
		// without an error: every result was checked above.
		_, err = c.Exec(ctx, "COMMIT")
		return err
	})
}
