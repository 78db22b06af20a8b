package sqlstore

import (
	"context"
	"database/sql"
)

// Stmt is one statement, with its placeholders already in the dialect's
// form, and its arguments.
type Stmt struct {
	SQL  string
	Args []any
}

// PipelineFunc runs one Apply in one transaction with as few round trips
// as the driver allows (Dialect.Pipeline). It runs lease (a SELECT of the
// run's owner and lease expiry, locking the row), passes its row to check
// (found = false when there is none), and runs writes; it commits only if
// check returned nil and every statement succeeded, and otherwise rolls
// back and returns check's error or the first statement's. Its errors go
// through Dialect.Classify like any other.
type PipelineFunc func(ctx context.Context, db *sql.DB, lease Stmt, check func(found bool, owner string, expires int64) error, writes []Stmt) error
