// Package postgres is the run store on PostgreSQL, through
// github.com/jackc/pgx/v5: for runs shared by several processes and
// machines. It has the same schema and passes the same conformance suite
// (store/storetest) as store/sqlite.
//
// Every write is one transaction, committed with the server's
// synchronous_commit (durable on the server's disk, and on its synchronous
// replicas if it has any, when Apply returns). Leases and cache claims are
// taken under row locks (SELECT ... FOR UPDATE), so processes on any
// machine that shares the database exclude one another.
//
// A lost connection (a server restart, a network cut) is retried with
// backoff for Options.RetryFor, then reported as store.ErrUnavailable;
// writes are idempotent, so a batch whose commit was cut off is applied
// again safely.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/internal/sqlstore"
)

// Options configure Open. The zero value is the documented defaults.
type Options struct {
	// RetryFor is how long an operation retries while the server cannot
	// be reached before it fails with store.ErrUnavailable. Zero means 30
	// seconds.
	RetryFor time.Duration
	// MaxConns bounds the connections the store opens. Zero means 8.
	MaxConns int
}

// Store is a run store in a PostgreSQL database. It is safe for concurrent
// use.
type Store struct {
	*sqlstore.DB
}

var _ store.Store = (*Store)(nil)

// Open connects to the database dsn (a libpq connection string or a
// postgres:// URL), creates the schema's tables if they are missing (under
// an advisory lock, so concurrent openers do not race) and returns the
// store. A database written by a newer schema is a *store.SchemaError; a
// server that cannot be reached within RetryFor is store.ErrUnavailable.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	return open(ctx, dsn, opts, classify)
}

// open is Open with the errors classified by classify (tests count the
// errors that a store call retried and so hid).
func open(ctx context.Context, dsn string, opts Options, classify func(error) (error, bool)) (*Store, error) {
	retry := opts.RetryFor
	if retry <= 0 {
		retry = 30 * time.Second
	}
	conns := opts.MaxConns
	if conns <= 0 {
		conns = 8
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	s, err := sqlstore.Open(ctx, db, sqlstore.Dialect{
		Name:        "postgres",
		Schema:      sqlstore.Schema("BYTEA", "BIGINT"),
		Dollar:      true,
		ForUpdate:   "FOR UPDATE",
		MigrateLock: "SELECT pg_advisory_xact_lock(7438214401)",
		Classify:    classify,
		RetryFor:    retry,
		Pipeline:    pipeline,
		Arrays:      true,
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Store{DB: s}, nil
}

// classify retries what a server restart or a lost connection causes and
// the transaction conflicts Postgres asks to retry; any other server error
// is returned as it is.
func classify(err error) (error, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case len(pe.Code) == 5 && pe.Code[:2] == "08", // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, crash, starting up
			pe.Code == "40001", pe.Code == "40P01", // serialization failure, deadlock
			pe.Code == "53300": // too many connections
			return err, true
		case pe.Code == "XX001" || pe.Code == "XX002":
			return &store.CorruptError{What: "postgres data", Err: err}, false
		}
		return fmt.Errorf("store/postgres: %w", err), false
	}
	// Anything that is not a server's answer is the connection's trouble
	// (refused, reset, EOF, closed mid-transaction): retry.
	return err, true
}
