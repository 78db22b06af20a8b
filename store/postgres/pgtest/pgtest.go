// Package pgtest gives tests a PostgreSQL database of their own on the
// test server that scripts/postgres-test-server starts (and .ci/run starts
// in CI). Use it from any package's tests that need a real Postgres store.
package pgtest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// EnvVar names the environment variable that holds the test server's DSN.
const EnvVar = "FLOWLINE_TEST_POSTGRES"

// Server returns the test server's DSN from EnvVar. Without it the test is
// skipped, except in CI (CI=true), where a missing server fails the test:
// CI must never pass without having run the Postgres tests.
func Server(t testing.TB) string {
	t.Helper()
	d := os.Getenv(EnvVar)
	if d == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(EnvVar + " is not set in CI: .ci/run must start a PostgreSQL server (scripts/postgres-test-server)")
		}
		t.Skip(EnvVar + " is not set: start a server with eval \"$(scripts/postgres-test-server)\" to run the Postgres tests")
	}
	return d
}

// Schema returns a DSN on the test server whose search_path is a new,
// empty schema, dropped when the test ends, so that each test has a store
// of its own on the one server. It skips or fails as Server does.
func Schema(t testing.TB) string {
	t.Helper()
	base := Server(t)
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		if db, err := sql.Open("pgx", base); err == nil {
			_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
			_ = db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: %s is not a URL: %v", EnvVar, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
