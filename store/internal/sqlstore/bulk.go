package sqlstore

import (
	"fmt"
	"strconv"
	"strings"
)

// bulk is a multi-row INSERT: head, then one tuple per row, then tail.
// One statement per chunk of rows costs one round trip (Postgres) and one
// statement's overhead (SQLite) instead of one per row: what makes a
// batch of a thousand task runs commit in milliseconds.
type bulk struct {
	head, tuple, tail string
	args              int // placeholders per tuple
	// types are the placeholders' column types, for Dialect.Arrays:
	// "text", "bytea" or "int8".
	types []string
}

// chunk is the most rows per statement, under both engines' limits on
// placeholders (SQLite 32766, Postgres 65535). A power of two: rows go
// out in chunks of a power of two (the binary digits of their count), so
// a statement's text is one of a few per table, and a driver that keeps
// statements prepared by their text (store/sqlite) parses each once.
const chunk = 128

var (
	bulkTaskRuns = bulk{
		head:  `INSERT INTO flowline_task_runs (run_id, label, state, value, err_class, err_message, attempts, start_t, end_t, cache_key) VALUES `,
		tuple: `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args: 10,
		types: []string{"text", "text", "text", "bytea", "text", "text", "int8", "int8", "int8", "text"},
		tail: ` ON CONFLICT (run_id, label) DO UPDATE SET state = excluded.state, value = excluded.value,
			err_class = excluded.err_class, err_message = excluded.err_message, attempts = excluded.attempts,
			start_t = excluded.start_t, end_t = excluded.end_t, cache_key = excluded.cache_key`,
	}
	bulkAttempts = bulk{
		head:  `INSERT INTO flowline_attempts (run_id, label, n, state, start_t, end_t, err_class, err_message, worker) VALUES `,
		tuple: `(?, ?, ?, ?, ?, ?, ?, ?, ?)`, args: 9,
		types: []string{"text", "text", "int8", "text", "int8", "int8", "text", "text", "text"},
		tail: ` ON CONFLICT (run_id, label, n) DO UPDATE SET state = excluded.state, start_t = excluded.start_t,
			end_t = excluded.end_t, err_class = excluded.err_class, err_message = excluded.err_message, worker = excluded.worker`,
	}
	bulkChanges = bulk{
		head:  `INSERT INTO flowline_changes (run_id, seq, label, attempt, from_state, to_state, err_class, err_message, t) VALUES `,
		tuple: `(?, ?, ?, ?, ?, ?, ?, ?, ?)`, args: 9,
		types: []string{"text", "int8", "text", "int8", "text", "text", "text", "text", "int8"},
		tail:  ` ON CONFLICT (run_id, seq) DO NOTHING`,
	}
	bulkCache = bulk{
		head:  `INSERT INTO flowline_cache (key, value, created, expires, claim_owner, claim_expires) VALUES `,
		tuple: `(?, ?, ?, ?, '', 0)`, args: 4,
		types: []string{"text", "bytea", "int8", "int8"},
		tail: ` ON CONFLICT (key) DO UPDATE SET value = excluded.value, created = excluded.created, expires = excluded.expires,
			claim_owner = '', claim_expires = 0`,
	}
)

// bulk appends to out the statements that write rows (indexes into the
// caller's slice, each key once: an upsert may not touch one row twice in
// one statement), in chunks.
func (s *DB) bulk(out []Stmt, b bulk, rows []int, args func(i int) []any) []Stmt {
	if s.d.Arrays && len(rows) > 0 {
		return append(out, b.arrays(rows, args))
	}
	for len(rows) > 0 {
		n := chunk
		for n > len(rows) {
			n /= 2
		}
		flat := make([]any, 0, n*b.args)
		for k := range n {
			flat = append(flat, args(rows[k])...)
		}
		out = append(out, Stmt{SQL: s.bulkSQL(b, n), Args: flat})
		rows = rows[n:]
	}
	return out
}

// bulkSQL returns the text of b's statement for n rows, made once.
func (s *DB) bulkSQL(b bulk, n int) string {
	type key struct {
		head string
		n    int
	}
	k := key{b.head, n}
	if q, ok := s.texts.Load(k); ok {
		return q.(string)
	}
	var q strings.Builder
	q.WriteString(b.head)
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(b.tuple)
	}
	q.WriteString(b.tail)
	text := s.rebind(q.String())
	s.texts.Store(k, text)
	return text
}

// lastPerKey returns the indexes 0..n-1 keeping, for each key, only the
// last row with it, in first-seen order: a later row of a batch supersedes
// an earlier one (a task run's final record its Running one).
func lastPerKey[K comparable](n int, key func(i int) K) []int {
	at := make(map[K]int, n)
	order := make([]int, 0, n)
	for i := range n {
		k := key(i)
		if p, ok := at[k]; ok {
			order[p] = i
			continue
		}
		at[k] = len(order)
		order = append(order, i)
	}
	return order
}

// arrays is the one statement that writes rows with each column passed as
// an array (Dialect.Arrays): INSERT ... SELECT ... FROM unnest($1::text[],
// ...). Its text is the same for any number of rows, so the server parses
// and plans it once per connection, and binds a few arrays instead of
// thousands of parameters.
func (b bulk) arrays(rows []int, args func(i int) []any) Stmt {
	cols := make([]any, b.args)
	for c, t := range b.types {
		switch t {
		case "text":
			cols[c] = make([]string, 0, len(rows))
		case "bytea":
			cols[c] = make([][]byte, 0, len(rows))
		case "int8":
			cols[c] = make([]int64, 0, len(rows))
		}
	}
	for _, i := range rows {
		for c, v := range args(i) {
			switch col := cols[c].(type) {
			case []string:
				cols[c] = append(col, v.(string))
			case [][]byte:
				cols[c] = append(col, v.([]byte))
			case []int64:
				switch n := v.(type) {
				case int64:
					cols[c] = append(col, n)
				case int:
					cols[c] = append(col, int64(n))
				default:
					panic(fmt.Sprintf("sqlstore: column %d of %q is a %T, not an integer", c, b.head, v))
				}
			}
		}
	}
	var sel, un, names strings.Builder
	k := 0
	for _, part := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(b.tuple, "("), ")"), ",") {
		if k > 0 || sel.Len() > 0 {
			sel.WriteString(", ")
		}
		if strings.TrimSpace(part) != "?" {
			sel.WriteString(strings.TrimSpace(part))
			continue
		}
		if k > 0 {
			un.WriteString(", ")
			names.WriteString(", ")
		}
		k++
		sel.WriteString("u.c" + strconv.Itoa(k))
		un.WriteString("$" + strconv.Itoa(k) + "::" + b.types[k-1] + "[]")
		names.WriteString("c" + strconv.Itoa(k))
	}
	q := strings.TrimSuffix(b.head, "VALUES ") + "SELECT " + sel.String() + " FROM unnest(" + un.String() + ") AS u(" + names.String() + ")" + b.tail
	return Stmt{SQL: q, Args: cols}
}
