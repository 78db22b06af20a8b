package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
	"github.com/flowline-go/flowline/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fresh is a DSN on a new, empty schema of the test server: see pgtest.
func fresh(t *testing.T) string { t.Helper(); return pgtest.Schema(t) }

func open(t *testing.T, d string, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), d, opts)
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{New: func(t *testing.T) store.Store {
		return open(t, fresh(t), postgres.Options{})
	}})
}

func TestNewerSchemaIsRefused(t *testing.T) {
	d := fresh(t)
	s := open(t, d, postgres.Options{})
	_, err := s.SQL().Exec(`UPDATE flowline_meta SET value = '99' WHERE key = 'schema_version'`)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = postgres.Open(context.Background(), d, postgres.Options{})
	var se *store.SchemaError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 99, se.Have)
}

func TestConcurrentOpenersShareOneSchema(t *testing.T) {
	d := fresh(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), d, postgres.Options{})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
}

// pgctl runs pg_ctl on the test server (as the postgres user when root).
func pgctl(t *testing.T, args ...string) {
	t.Helper()
	data, bin := os.Getenv("FLOWLINE_TEST_POSTGRES_DATA"), os.Getenv("FLOWLINE_TEST_POSTGRES_BIN")
	if data == "" || bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("FLOWLINE_TEST_POSTGRES_DATA and _BIN are not set in CI (scripts/postgres-test-server sets them)")
		}
		t.Skip("FLOWLINE_TEST_POSTGRES_DATA and _BIN are not set: the server cannot be restarted")
	}
	// -l: the server's output goes to its log, so that it does not hold
	// our output pipe open after pg_ctl returns.
	argv := append([]string{filepath.Join(bin, "pg_ctl"), "-D", data, "-w", "-t", "60",
		"-l", filepath.Join(filepath.Dir(data), "server.log")}, args...)
	if os.Geteuid() == 0 {
		argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	out, err := os.CreateTemp(t.TempDir(), "pg_ctl")
	require.NoError(t, err)
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	text, _ := os.ReadFile(out.Name())
	require.NoError(t, err, "pg_ctl %v: %s", args, text)
}

// TestServerRestartDuringWrites restarts the server while writers apply
// batches: every Apply either succeeds (after waiting for the server) or
// fails with a typed error, and every batch that succeeded is there.
func TestServerRestartDuringWrites(t *testing.T) {
	d := fresh(t)
	s := open(t, d, postgres.Options{RetryFor: time.Minute})
	defer s.Close()
	ctx := context.Background()
	require.NoError(t, s.CreateRun(ctx, store.Run{ID: "r1", Flow: "f", Owner: "me", LeaseExpires: time.Now().Add(time.Hour)}))
	const writers, each = 4, 60
	var wg sync.WaitGroup
	failures := make(chan error, writers*each)
	done := make([][]bool, writers)
	for w := range writers {
		done[w] = make([]bool, each)
		wg.Go(func() {
			for i := range each {
				label := fmt.Sprintf("w%d-%03d", w, i)
				err := s.Apply(ctx, &store.Batch{RunID: "r1", Owner: "me",
					TaskRuns: []store.TaskRun{{Label: label, State: "Success", Value: []byte(`"v"`)}},
					Changes:  []store.Change{{Seq: int64(w*each + i + 1), Label: label, From: "Running", To: "Success"}}})
				if err != nil {
					failures <- err
					continue
				}
				done[w][i] = true
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	pgctl(t, "-m", "fast", "restart")
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("an Apply failed across a server restart (it should wait and retry): %v", err)
	}
	trs, err := s.TaskRuns(ctx, "r1")
	require.NoError(t, err)
	got := map[string]bool{}
	for _, tr := range trs {
		got[tr.Label] = true
	}
	for w := range writers {
		for i := range each {
			if done[w][i] {
				assert.True(t, got[fmt.Sprintf("w%d-%03d", w, i)], "a batch reported durable is lost")
			}
		}
	}
	chs, err := s.Changes(ctx, "r1")
	require.NoError(t, err)
	assert.Len(t, chs, len(trs), "no change recorded twice by a retried batch")
}

// TestServerDownIsUnavailable stops the server: a write waits RetryFor,
// then fails with store.ErrUnavailable; once the server is back, the
// store works again.
func TestServerDownIsUnavailable(t *testing.T) {
	d := fresh(t)
	s := open(t, d, postgres.Options{RetryFor: 700 * time.Millisecond})
	defer s.Close()
	ctx := context.Background()
	require.NoError(t, s.CreateRun(ctx, store.Run{ID: "r1", Flow: "f"}))
	pgctl(t, "-m", "fast", "stop")
	restarted := false
	defer func() {
		if !restarted {
			pgctl(t, "start")
		}
	}()
	err := s.Apply(ctx, &store.Batch{RunID: "r1", TaskRuns: []store.TaskRun{{Label: "t", State: "Success"}}})
	require.ErrorIs(t, err, store.ErrUnavailable)
	pgctl(t, "start")
	restarted = true
	require.NoError(t, s.Apply(ctx, &store.Batch{RunID: "r1", TaskRuns: []store.TaskRun{{Label: "t", State: "Success"}}}))
	trs, err := s.TaskRuns(ctx, "r1")
	require.NoError(t, err)
	assert.Len(t, trs, 1)
}
