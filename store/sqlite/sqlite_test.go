package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{New: func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "runs.db"))
	}})
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	ctx := context.Background()
	s := open(t, path)
	require.NoError(t, s.CreateRun(ctx, store.Run{ID: "r1", Flow: "f", FlowHash: "h"}))
	require.NoError(t, s.Apply(ctx, &store.Batch{RunID: "r1",
		TaskRuns: []store.TaskRun{{Label: "t", State: "Success", Value: []byte(`7`)}}}))
	require.NoError(t, s.Close())
	s = open(t, path)
	defer s.Close()
	trs, err := s.TaskRuns(ctx, "r1")
	require.NoError(t, err)
	require.Len(t, trs, 1)
	assert.Equal(t, []byte(`7`), trs[0].Value)
}

func TestWALAndSynchronousFull(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "runs.db"))
	defer s.Close()
	var mode string
	var sync int
	require.NoError(t, s.SQL().QueryRow("PRAGMA journal_mode").Scan(&mode))
	require.NoError(t, s.SQL().QueryRow("PRAGMA synchronous").Scan(&sync))
	assert.Equal(t, "wal", mode)
	assert.Equal(t, 2, sync, "synchronous=FULL is 2")
}

func TestNotADatabaseIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	require.NoError(t, os.WriteFile(path, []byte("this is not a sqlite file, but it is long enough to look like a header of one........"), 0o600))
	_, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	var ce *store.CorruptError
	require.ErrorAs(t, err, &ce)
	assert.ErrorIs(t, err, store.ErrCorrupt)
}

func TestDamagedPagesAreCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	ctx := context.Background()
	s := open(t, path)
	require.NoError(t, s.CreateRun(ctx, store.Run{ID: "r1", Flow: "f"}))
	for i := range 200 {
		require.NoError(t, s.Apply(ctx, &store.Batch{RunID: "r1",
			TaskRuns: []store.TaskRun{{Label: string(rune('a'+i%26)) + time.Duration(i).String(), State: "Success", Value: make([]byte, 500)}}}))
	}
	_, err := s.SQL().Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	require.NoError(t, err)
	require.NoError(t, s.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Greater(t, len(data), 8192)
	for i := 4096; i < len(data); i++ { // every page but the first
		data[i] = 0xA5
	}
	require.NoError(t, os.WriteFile(path, data, 0o600))
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err == nil {
		defer s.Close()
		_, err = s.TaskRuns(ctx, "r1")
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, store.ErrCorrupt, "got %v", err)
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	s := open(t, path)
	_, err := s.SQL().Exec(`UPDATE flowline_meta SET value = '99' WHERE key = 'schema_version'`)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = sqlite.Open(context.Background(), path, sqlite.Options{})
	var se *store.SchemaError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, store.ErrSchemaNewer)
	assert.Equal(t, 99, se.Have)
}

func TestTwoHandlesShareOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	ctx := context.Background()
	a, b := open(t, path), open(t, path)
	defer a.Close()
	defer b.Close()
	require.NoError(t, a.CreateRun(ctx, store.Run{ID: "r1", Flow: "f"}))
	_, err := a.Acquire(ctx, "r1", "a", time.Hour)
	require.NoError(t, err)
	_, err = b.Acquire(ctx, "r1", "b", time.Hour)
	assert.ErrorIs(t, err, store.ErrLeaseHeld, "a second handle (as a second process) sees a's lease")
}

func TestEmptyPathIsRefused(t *testing.T) {
	_, err := sqlite.Open(context.Background(), "", sqlite.Options{})
	assert.Error(t, err)
}

// TestStatementCacheEvictsAndStaysCorrect runs more distinct statements
// than a connection keeps prepared, then the first ones again, and a
// schema change under a kept statement: each still does what its text
// says.
func TestStatementCacheEvictsAndStaysCorrect(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "runs.db"))
	defer s.Close()
	db := s.SQL()
	_, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)`)
	require.NoError(t, err)
	const n = 300 // more than the cache holds
	for round := range 2 {
		for k := range n {
			_, err := db.Exec(fmt.Sprintf(`INSERT INTO t (k, v) VALUES (%d, ?) ON CONFLICT (k) DO UPDATE SET v = v + excluded.v`, k), 1)
			require.NoError(t, err, "round %d, statement %d", round, k)
		}
	}
	var sum, count int
	require.NoError(t, db.QueryRow(`SELECT sum(v), count(*) FROM t`).Scan(&sum, &count))
	assert.Equal(t, n, count)
	assert.Equal(t, 2*n, sum, "every statement ran twice, the evicted ones prepared again")

	ins := `INSERT INTO t (k, v) VALUES (?, ?)`
	_, err = db.Exec(ins, 1000, 7)
	require.NoError(t, err)
	_, err = db.Exec(`ALTER TABLE t ADD COLUMN w INTEGER NOT NULL DEFAULT 5`)
	require.NoError(t, err)
	_, err = db.Exec(ins, 1001, 8) // prepared before the change: SQLite prepares it again
	require.NoError(t, err)
	var w int
	require.NoError(t, db.QueryRow(`SELECT v + w FROM t WHERE k = 1001`).Scan(&w))
	assert.Equal(t, 13, w)
}
