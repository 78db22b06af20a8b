// Package sqlite is the embedded run store: one SQLite file, written with
// modernc.org/sqlite (pure Go, no cgo), in WAL mode with synchronous=FULL,
// so that a write Apply reported durable survives a power loss. Pick it for
// one machine (several processes on it may share the file); pick
// store/postgres for several machines.
//
// Writes are serialized on one connection (SQLite has one writer at a
// time); the flow package batches a run's writes into one transaction per
// commit (group commit), so recording keeps up with thousands of task runs
// per second.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/internal/sqlstore"
)

// Options configure Open. The zero value is the documented defaults.
type Options struct {
	// BusyTimeout is how long a write waits for another process holding
	// the file's write lock before failing with store.ErrUnavailable.
	// Zero means 10 seconds.
	BusyTimeout time.Duration
}

// Store is a run store in one SQLite file. It is safe for concurrent use.
type Store struct {
	*sqlstore.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store in the file path. A file that
// is not a SQLite database, or a damaged one, is a *store.CorruptError; a
// file written by a newer schema is a *store.SchemaError. Close the store
// when done.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("store/sqlite: Open with an empty path")
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(OFF)")
	q.Add("_txlock", "immediate")
	if _, err := os.Stat(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store/sqlite: %w", err)
	}
	inner, err := sqlite.NewConnector("file:" + path + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: %w", err)
	}
	db := sql.OpenDB(connector{inner: inner})
	// One connection: SQLite has one writer, and one connection keeps a
	// transaction's statements off a second, blocked connection.
	db.SetMaxOpenConns(1)
	s, err := sqlstore.Open(ctx, db, sqlstore.Dialect{
		Name:     "sqlite " + path,
		Schema:   sqlstore.Schema("BLOB", "INTEGER"),
		Classify: classify,
		RetryFor: busy,
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Store{DB: s}, nil
}

// classify maps SQLite's result codes: a damaged file is corrupt, a full
// disk or a read-only file is unavailable, a busy database is retried.
func classify(err error) (error, bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		if errors.Is(err, sql.ErrConnDone) {
			return fmt.Errorf("%w: %v", store.ErrClosed, err), false
		}
		return fmt.Errorf("store/sqlite: %w", err), false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return &store.CorruptError{What: "sqlite database", Err: err}, false
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: disk full: %v", store.ErrUnavailable, err), false
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM:
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err), false
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return err, true
	}
	return fmt.Errorf("store/sqlite: %w", err), false
}
