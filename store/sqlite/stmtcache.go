package sqlite

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
)

// cacheSize is how many statements a connection keeps prepared. The
// store's writes use a few dozen texts (sqlstore cuts bulk inserts into
// chunks of a power of two rows, so their texts repeat); the rest are
// evicted, least recently used first.
const cacheSize = 96

// sqliteConn is what database/sql uses of modernc's connection.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// connector opens connections that keep the statements they execute
// prepared. modernc's Exec prepares a statement's text anew every time,
// and for a group commit's multi-row INSERTs parsing costs as much as
// the writing (storebench's profile: a quarter of the recorder's CPU);
// a prepared statement is bound and stepped again without parsing.
type connector struct{ inner driver.Connector }

// Connect implements driver.Connector.
func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(sqliteConn)
	if !ok {
		_ = dc.Close()
		return nil, fmt.Errorf("store/sqlite: driver connection is a %T, which lacks a context method", dc)
	}
	return &conn{sqliteConn: sc, stmts: map[string]*list.Element{}, lru: list.New()}, nil
}

// Driver implements driver.Connector.
func (c connector) Driver() driver.Driver { return c.inner.Driver() }

// conn is a connection with a cache of prepared statements for Exec.
// database/sql never uses a connection from two goroutines at once, so it
// needs no lock. Queries are not cached: a statement whose rows are still
// being read cannot run again, and the store's reads are not its hot path.
type conn struct {
	sqliteConn
	stmts map[string]*list.Element // of *cached
	lru   *list.List               // most recently used first
}

type cached struct {
	query string
	st    driver.StmtExecContext
	close func() error
}

// ExecContext runs query as a statement prepared once per connection.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := c.stmts[query]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cached).st.ExecContext(ctx, args)
	}
	ds, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	st, ok := ds.(driver.StmtExecContext)
	if !ok {
		_ = ds.Close()
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	if c.lru.Len() >= cacheSize {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.stmts, old.Value.(*cached).query)
		_ = old.Value.(*cached).close()
	}
	c.stmts[query] = c.lru.PushFront(&cached{query: query, st: st, close: ds.Close})
	return st.ExecContext(ctx, args)
}

// Close finalizes the cached statements, then closes the connection.
func (c *conn) Close() error {
	var errs []error
	for e := c.lru.Front(); e != nil; e = e.Next() {
		errs = append(errs, e.Value.(*cached).close())
	}
	clear(c.stmts)
	c.lru.Init()
	return errors.Join(append(errs, c.sqliteConn.Close())...)
}
