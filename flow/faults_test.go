package flow_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
	"github.com/flowline-go/flowline/task"
)

// Faults of the store in the middle of a run, on the real stores.

// faultFlow maps n tasks that sleep a little and return a padded string,
// counting their runs; tasks from gateFrom on wait for gate, if it is not
// nil.
func faultFlow(t *testing.T, runs *counter, n int, pad int, gate <-chan struct{}, gateFrom int) (*flow.Flow, *flow.Node[[]string]) {
	work := task.New("fault.work", func(_ context.Context, x int) (string, error) {
		if gate != nil && x >= gateFrom {
			<-gate
		}
		runs.add(fmt.Sprint(x))
		time.Sleep(2 * time.Millisecond)
		return fmt.Sprintf("%d:%s", x, strings.Repeat("x", pad)), nil
	}, task.Options{})
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	b := flow.New("faults", flow.Options{})
	out := flow.Map(b, work, flow.Const(xs))
	f, err := b.Build()
	require.NoError(t, err)
	return f, out
}

func checkFaultResult(t *testing.T, res *flow.Result, out *flow.Node[[]string], n, pad int) {
	t.Helper()
	v, ok := flow.Value(res, out)
	require.True(t, ok, res.Report())
	require.Len(t, v, n)
	for i, s := range v {
		assert.Equal(t, fmt.Sprintf("%d:%s", i, strings.Repeat("x", pad)), s)
	}
}

// pgRestart restarts the test server (as the postgres user when root).
func pgRestart(t *testing.T) {
	t.Helper()
	data, bin := os.Getenv("FLOWLINE_TEST_POSTGRES_DATA"), os.Getenv("FLOWLINE_TEST_POSTGRES_BIN")
	if data == "" || bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("FLOWLINE_TEST_POSTGRES_DATA and _BIN are not set in CI (scripts/postgres-test-server sets them)")
		}
		t.Skip("FLOWLINE_TEST_POSTGRES_DATA and _BIN are not set: the server cannot be restarted")
	}
	argv := []string{filepath.Join(bin, "pg_ctl"), "-D", data, "-w", "-t", "60",
		"-l", filepath.Join(filepath.Dir(data), "server.log"), "-m", "fast", "restart"}
	if os.Geteuid() == 0 {
		argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	out, err := os.CreateTemp(t.TempDir(), "pg_ctl")
	require.NoError(t, err)
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out // a file: the server must not hold a pipe of ours open
	err = cmd.Run()
	text, _ := os.ReadFile(out.Name())
	require.NoError(t, err, "pg_ctl restart: %s", text)
}

// TestPostgresServerRestartDuringARun restarts the real server while a
// durable run records: the store waits and retries (RetryFor), the run
// completes with every result, every task ran once, and the record is
// complete.
func TestPostgresServerRestartDuringARun(t *testing.T) {
	dsn := pgtest.Schema(t)
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{RetryFor: time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	const n, pad = 400, 16
	var runs counter
	f, out := faultFlow(t, &runs, n, pad, nil, 0)
	done := make(chan struct{})
	var res *flow.Result
	go func() {
		defer close(done)
		res, err = f.Run(context.Background(), newPool(t, 4), flow.RunOptions{Store: st, RunID: "restart"})
	}()
	for runs.total() < n/4 {
		time.Sleep(time.Millisecond)
	}
	before := runs.total()
	select {
	case <-done:
		t.Fatal("the run ended before the restart began")
	default:
	}
	pgRestart(t)
	after := runs.total()
	<-done
	require.NoError(t, err)
	t.Logf("server restart began after %d and ended after %d of %d task runs had run", before, after, n)
	assert.Less(t, before, n, "the restart began mid-run")
	checkFaultResult(t, res, out, n, pad)
	for i := range n {
		assert.Equal(t, 1, runs.get(fmt.Sprint(i)), "task %d", i)
	}
	trs, err := st.TaskRuns(context.Background(), "restart")
	require.NoError(t, err)
	assert.Len(t, trs, n+1, "every task run recorded (and the mapped node)")
	for _, tr := range trs {
		assert.Equal(t, "Success", tr.State, tr.Label)
	}
	rec, err := st.Run(context.Background(), "restart")
	require.NoError(t, err)
	assert.Equal(t, "Success", rec.State)
}

// TestFullDiskStopsTheRunAndResumeFinishesIt fills the SQLite database
// (its max_page_count: SQLite's "database or disk is full", the error a
// full disk gives) during a run: the run stops with a *flow.StoreError
// matching store.ErrUnavailable, is not recorded as ended, and once there
// is room again a resume finishes it without running again any task run
// recorded complete.
func TestFullDiskStopsTheRunAndResumeFinishesIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	st := openStore(t, path)
	const n, pad = 1000, 4000
	var runs counter
	gate := make(chan struct{})
	f, out := faultFlow(t, &runs, n, pad, gate, 100)
	ctx := context.Background()
	// Once a part of the first 100 task runs is recorded, leave the
	// database room for a few pages more only (through the store's one
	// connection), then let the other 900 run.
	reader := openStore(t, path)
	var res *flow.Result
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err = f.Run(ctx, newPool(t, 4), flow.RunOptions{Store: st, RunID: "full"})
	}()
	var pages int
	for {
		trs, rerr := reader.TaskRuns(ctx, "full")
		ok := 0
		for _, tr := range trs {
			if rerr == nil && tr.State == "Success" {
				ok++
			}
		}
		if ok >= 50 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, st.SQL().QueryRow("PRAGMA page_count").Scan(&pages))
	var limit int
	require.NoError(t, st.SQL().QueryRow(fmt.Sprintf("PRAGMA max_page_count = %d", pages+5)).Scan(&limit))
	close(gate) // the other 900 run now, and cannot all be recorded
	<-done
	var se *flow.StoreError
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, store.ErrUnavailable)
	assert.Contains(t, err.Error(), "full")
	require.NotNil(t, res)
	rec, err := st.Run(ctx, "full")
	require.NoError(t, err)
	assert.False(t, rec.Finished(), "a run stopped by its store is not recorded as ended")
	trs, err := st.TaskRuns(ctx, "full")
	require.NoError(t, err)
	recorded := map[string]bool{}
	for _, tr := range trs {
		if tr.State == "Success" {
			recorded[strings.TrimSuffix(strings.TrimPrefix(tr.Label, "fault.work["), "]")] = true
		}
	}
	assert.NotEmpty(t, recorded, "some task runs were recorded before the disk filled")
	assert.Less(t, len(recorded), n, "the disk filled before the end")

	// Room again, for a process that opens the store anew (max_page_count
	// is a setting of the connection that filled it).
	require.NoError(t, st.Close())
	st = openStore(t, path)
	res, err = f.Resume(ctx, newPool(t, 4), "full", flow.RunOptions{Store: st})
	require.NoError(t, err)
	checkFaultResult(t, res, out, n, pad)
	for i := range n {
		label := fmt.Sprint(i)
		if recorded[label] {
			assert.Equal(t, 1, runs.get(label), "task %d was recorded complete: not run again", i)
		} else {
			assert.LessOrEqual(t, runs.get(label), 2, "task %d: at most its lost run and the resume's", i)
		}
	}
	rec, err = st.Run(ctx, "full")
	require.NoError(t, err)
	assert.Equal(t, "Success", rec.State)
}
