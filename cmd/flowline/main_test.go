package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

// envMain makes the test binary the flowline command (TestMain, in
// testmain_test.go): the tests run it as a child process, with real
// arguments, output and exit status.
const envMain = "FLOWLINE_CLI_TEST_MAIN"

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// flowline runs the command with args, in UTC, without $FLOWLINE_STORE
// unless env sets it.
func flowline(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envMain+"=1", "TZ=UTC", "FLOWLINE_STORE=")
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, out.String(), errOut.String()}
}

func at(hms string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05.999", "2026-12-01 "+hms)
	if err != nil {
		panic(err)
	}
	return t
}

// fill records a fixed history in st: two etl runs (one failed after a
// retry, one succeeded), a report run in flight, two cache entries.
func fill(t *testing.T, st store.Store) {
	ctx := context.Background()
	far := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, st.CreateRun(ctx, store.Run{ID: "nightly-1", Flow: "etl", FlowHash: "9f8e7d6c5b4a39281706",
		Params: []byte(`{"day":"mon"}`), Created: at("02:00:00")}))
	require.NoError(t, st.Apply(ctx, &store.Batch{RunID: "nightly-1",
		Run: &store.RunUpdate{State: "Failed", ErrClass: "failure", ErrMessage: "task \"load\" failed: upstream is down\nsecond line", Ended: at("02:00:03.5")},
		TaskRuns: []store.TaskRun{
			{Label: "extract", State: "Success", Value: []byte(`[1,2,3]`), Attempts: 1, Start: at("02:00:00.1"), End: at("02:00:01.3")},
			{Label: "load", State: "Failed", ErrClass: "failure", ErrMessage: "upstream is down", Attempts: 2, Start: at("02:00:01.3"), End: at("02:00:03.4")},
			{Label: "report", State: "Cancelled", ErrClass: "canceled", ErrMessage: "not run: upstream \"load\" failed"},
		},
		Attempts: []store.Attempt{
			{Label: "extract", N: 1, State: "Success", Start: at("02:00:00.1"), End: at("02:00:01.3"), Worker: "pool/0"},
			{Label: "load", N: 1, State: "Retrying", Start: at("02:00:01.3"), End: at("02:00:02.3"), ErrClass: "timeout", ErrMessage: "attempt timed out after 1s", Worker: "pool/1"},
			{Label: "load", N: 2, State: "Failed", Start: at("02:00:02.4"), End: at("02:00:03.4"), ErrClass: "failure", ErrMessage: "upstream is down", Worker: "pool/0"},
		}}))
	require.NoError(t, st.CreateRun(ctx, store.Run{ID: "nightly-2", Flow: "etl", FlowHash: "9f8e7d6c5b4a39281706",
		Params: []byte(`{"day":"tue"}`), Created: at("02:10:00")}))
	require.NoError(t, st.Apply(ctx, &store.Batch{RunID: "nightly-2",
		Run:      &store.RunUpdate{State: "Success", Ended: at("02:10:01.25")},
		TaskRuns: []store.TaskRun{{Label: "extract", State: "Cached", Value: []byte(`[1,2,3]`), Start: at("02:10:00"), End: at("02:10:00"), CacheKey: "extract/v1/abc"}}}))
	require.NoError(t, st.CreateRun(ctx, store.Run{ID: "adhoc-7", Flow: "report", FlowHash: "0123456789abcdef",
		Params: []byte(`{}`), Owner: "web-1/42/ab12", LeaseExpires: far, Created: at("02:20:00")}))
	require.NoError(t, st.CreateRun(ctx, store.Run{ID: "stuck-3", Flow: "report", FlowHash: "0123456789abcdef",
		Params: []byte(`{}`), Owner: "web-2/7/cd34", LeaseExpires: at("02:31:00"), Created: at("02:30:00")}))
	require.NoError(t, st.Apply(ctx, &store.Batch{RunID: "nightly-2", Cache: []store.CacheEntry{
		{Key: "extract/v1/abc", Value: []byte(`[1,2,3]`), Created: at("02:00:01.3")},
		{Key: "load/v2/def", Value: []byte(`"done"`), Created: at("02:05:00"), Expires: far},
	}}))
}

// sqliteStore is a store file with the fixed history.
func sqliteStore(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "runs.db")
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	require.NoError(t, err)
	fill(t, st)
	require.NoError(t, st.Close())
	return path
}

// stores are the fixed history in each store: the command must print the
// same for both.
func stores(t *testing.T) map[string]string {
	out := map[string]string{"sqlite": sqliteStore(t)}
	if os.Getenv(pgtest.EnvVar) != "" || os.Getenv("CI") == "true" {
		dsn := pgtest.Schema(t)
		st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		require.NoError(t, err)
		fill(t, st)
		require.NoError(t, st.Close())
		out["postgres"] = dsn
	}
	return out
}

const listGolden = `RUN        FLOW    STATE    CREATED              DURATION    REQUESTS  ERROR
stuck-3    report  Running  2026-12-01 02:30:00  not driven            
adhoc-7    report  Running  2026-12-01 02:20:00  running               
nightly-2  etl     Success  2026-12-01 02:10:00  1.25s                 
nightly-1  etl     Failed   2026-12-01 02:00:00  3.5s                  failure: task "load" failed: upstream is down …
`

const showGolden = `Run      nightly-1
Flow     etl (hash 9f8e7d6c5b4a)
State    Failed
Error    failure: task "load" failed: upstream is down …
Created  2026-12-01 02:00:00
Ended    2026-12-01 02:00:03 (took 3.5s)
Params   {"day":"mon"}

TASK     STATE      ATTEMPTS  START                DURATION  ERROR
extract  Success    1         2026-12-01 02:00:00  1.2s      
load     Failed     2         2026-12-01 02:00:01  2.1s      failure: upstream is down
report   Cancelled  0         -                    -         canceled: not run: upstream "load" failed

ATTEMPT     STATE     START                DURATION  WORKER  ERROR
extract #1  Success   2026-12-01 02:00:00  1.2s      pool/0  
load #1     Retrying  2026-12-01 02:00:01  1s        pool/1  timeout: attempt timed out after 1s
load #2     Failed    2026-12-01 02:00:02  1s        pool/0  failure: upstream is down
`

const cacheGolden = `KEY             BYTES  CREATED              EXPIRES
extract/v1/abc  7      2026-12-01 02:00:01  never
load/v2/def     6      2026-12-01 02:05:00  2099-01-01 00:00:00
`

func TestRunsListAndShow(t *testing.T) {
	t.Parallel()
	for name, where := range stores(t) {
		t.Run(name, func(t *testing.T) {
			r := flowline(t, nil, "-store", where, "runs", "list")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, listGolden, r.stdout)
			assert.Empty(t, r.stderr)

			r = flowline(t, []string{"FLOWLINE_STORE=" + where}, "runs", "show", "nightly-1")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, showGolden, r.stdout)

			r = flowline(t, nil, "-store", where, "runs", "show", "adhoc-7")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "Owner    web-1/42/ab12 (lease until 2099-01-01 00:00:00)\n")
			assert.Contains(t, r.stdout, "\nno task runs recorded\n")
			assert.NotContains(t, r.stdout, "Ended")

			r = flowline(t, nil, "-store", where, "runs", "show", "stuck-3")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "Owner    web-2/7/cd34 (lease expired 2026-12-01 02:31:00: no process drives the run; flow.Serve or ResumeExpired resumes it)\n")

			r = flowline(t, nil, "-store", where, "cache", "list")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, cacheGolden, r.stdout)
		})
	}
}

func TestRunsListFilters(t *testing.T) {
	t.Parallel()
	where := sqliteStore(t)
	ids := func(args ...string) []string {
		t.Helper()
		r := flowline(t, nil, append([]string{"-store", where, "runs", "list"}, args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
			out = append(out, strings.Fields(line)[0])
		}
		return out
	}
	assert.Equal(t, []string{"nightly-2", "nightly-1"}, ids("-flow", "etl"))
	assert.Equal(t, []string{"nightly-1"}, ids("-state", "failed"), "states in any case")
	assert.Equal(t, []string{"stuck-3", "adhoc-7", "nightly-1"}, ids("-state", "Failed, Running"))
	assert.Equal(t, []string{"stuck-3"}, ids("-limit", "1"), "the newest")
	assert.Equal(t, []string{"stuck-3", "adhoc-7"}, ids("-limit", "2", "-flow", "report"))
	assert.Equal(t, []string{"stuck-3", "adhoc-7", "nightly-2", "nightly-1"}, ids("-since", "100000d"))
	assert.Equal(t, []string{"nightly-1"}, ids("-flow", "etl", "-state", "Failed", "-limit", "5", "-since", "36500d"))
	r := flowline(t, nil, "-store", where, "runs", "list", "-since", "1h")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "no runs\n", r.stdout, "the fixed history is older than an hour")
	r = flowline(t, nil, "-store", where, "runs", "list", "-flow", "nope", "-json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "[]\n", r.stdout)
}

func TestJSON(t *testing.T) {
	t.Parallel()
	where := sqliteStore(t)
	r := flowline(t, nil, "-store", where, "-json", "runs", "list")
	require.Equal(t, 0, r.code, r.stderr)
	var runs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &runs))
	require.Len(t, runs, 4)
	assert.Equal(t, "stuck-3", runs[0]["id"])
	assert.Equal(t, "Failed", runs[3]["state"])
	assert.Equal(t, 3.5, runs[3]["duration_seconds"])
	assert.Equal(t, map[string]any{"day": "mon"}, runs[3]["params"])
	assert.Equal(t, "2026-12-01T02:00:00Z", runs[3]["created"])
	assert.NotContains(t, runs[0], "ended", "zero times are left out")

	r = flowline(t, nil, "-store", where, "runs", "show", "-json", "nightly-1")
	require.Equal(t, 0, r.code, r.stderr)
	var show struct {
		Run struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		} `json:"run"`
		Tasks []struct {
			Label    string          `json:"label"`
			State    string          `json:"state"`
			Attempts int             `json:"attempts"`
			Value    json.RawMessage `json:"value"`
		} `json:"tasks"`
		Attempts []struct {
			Label  string `json:"label"`
			N      int    `json:"n"`
			Worker string `json:"worker"`
			Class  string `json:"error_class"`
		} `json:"attempts"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &show))
	assert.Equal(t, "nightly-1", show.Run.ID)
	assert.Equal(t, "task \"load\" failed: upstream is down\nsecond line", show.Run.Error, "the JSON has the whole message")
	require.Len(t, show.Tasks, 3)
	assert.JSONEq(t, "[1,2,3]", string(show.Tasks[0].Value))
	assert.Equal(t, 2, show.Tasks[1].Attempts)
	require.Len(t, show.Attempts, 3)
	assert.Equal(t, "timeout", show.Attempts[1].Class)
	assert.Equal(t, "pool/1", show.Attempts[1].Worker)

	r = flowline(t, nil, "-store", where, "-json", "cache", "list", "load/")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `[{"key":"load/v2/def","created":"2026-12-01T02:05:00Z","expires":"2099-01-01T00:00:00Z","value":"done","value_bytes":6}]`, r.stdout)
}

func TestRetryAndCancel(t *testing.T) {
	t.Parallel()
	for name, where := range stores(t) {
		t.Run(name, func(t *testing.T) {
			r := flowline(t, nil, "-store", where, "runs", "retry", "nightly-1")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, "retry requested for run nightly-1 (flow \"etl\", Failed).\n"+
				"A process running flow.Serve with flow \"etl\" performs it: it re-runs the run's failed, cancelled and never-run tasks.\n", r.stdout)
			r = flowline(t, nil, "-store", where, "runs", "retry", "nightly-1")
			assert.Equal(t, 0, r.code, "a pending request can be made again: %s", r.stderr)
			r = flowline(t, nil, "-store", where, "runs", "list", "-state", "Failed")
			assert.Contains(t, r.stdout, "  retry requested  ")
			r = flowline(t, nil, "-store", where, "runs", "show", "nightly-1")
			assert.Regexp(t, `\nRequests +retry requested at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n`, r.stdout)

			r = flowline(t, nil, "-store", where, "runs", "retry", "nightly-2")
			assert.Equal(t, 1, r.code)
			assert.Equal(t, "flowline: cannot retry run nightly-2: it ended Success; only a failed, timed-out or cancelled run can be retried\n", r.stderr)
			assert.Empty(t, r.stdout)
			r = flowline(t, nil, "-store", where, "runs", "retry", "adhoc-7")
			assert.Equal(t, 1, r.code)
			assert.Equal(t, "flowline: cannot retry run adhoc-7: it has not ended (cancel it first, or wait for it)\n", r.stderr)

			r = flowline(t, nil, "-store", where, "-json", "runs", "cancel", "adhoc-7")
			require.Equal(t, 0, r.code, r.stderr)
			var req map[string]any
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &req))
			assert.Equal(t, "cancel", req["request"])
			assert.Equal(t, "adhoc-7", req["run"])
			assert.NotEmpty(t, req["requested"])
			r = flowline(t, nil, "-store", where, "runs", "list", "-state", "running")
			assert.Contains(t, r.stdout, "  cancel requested")
			r = flowline(t, nil, "-store", where, "runs", "cancel", "stuck-3")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, "cancel requested for run stuck-3 (flow \"report\").\n"+
				"Its driver stops it within its poll interval (about a second); the run then ends Cancelled.\n"+
				"No process drives it now: it is cancelled when one resumes it.\n", r.stdout)
			r = flowline(t, nil, "-store", where, "runs", "cancel", "nightly-2")
			assert.Equal(t, 1, r.code)
			assert.Equal(t, "flowline: cannot cancel run nightly-2: it has already ended (Success)\n", r.stderr)

			for _, cmd := range []string{"show", "retry", "cancel"} {
				r = flowline(t, nil, "-store", where, "runs", cmd, "nope")
				assert.Equal(t, 1, r.code, cmd)
				assert.Equal(t, "flowline: no run \"nope\" in the store\n", r.stderr, cmd)
			}
		})
	}
}

func TestCacheInvalidate(t *testing.T) {
	t.Parallel()
	for name, where := range stores(t) {
		t.Run(name, func(t *testing.T) {
			r := flowline(t, nil, "-store", where, "cache", "invalidate", "load/")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, "invalidated 1 cache entry whose key starts with \"load/\"\n", r.stdout)
			r = flowline(t, nil, "-store", where, "cache", "list")
			assert.Equal(t, "KEY             BYTES  CREATED              EXPIRES\nextract/v1/abc  7      2026-12-01 02:00:01  never\n", r.stdout)
			r = flowline(t, nil, "-store", where, "-json", "cache", "invalidate", "zzz")
			require.Equal(t, 0, r.code, r.stderr)
			assert.JSONEq(t, `{"prefix":"zzz","deleted":0}`, r.stdout)
			r = flowline(t, nil, "-store", where, "cache", "invalidate", "")
			assert.Equal(t, "invalidated 1 cache entry (every entry)\n", r.stdout)
			r = flowline(t, nil, "-store", where, "cache", "list")
			assert.Equal(t, "no cache entries\n", r.stdout)
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	where := sqliteStore(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string // a line of it
	}{
		{"NoStore", []string{"runs", "list"}, 2, "flowline: no store: give -store or set FLOWLINE_STORE"},
		{"NoCommand", []string{"-store", where}, 2, "flowline: expected a command"},
		{"UnknownCommand", []string{"-store", where, "runs", "delete", "x"}, 2, `flowline: unknown command "runs delete"`},
		{"UnknownFlag", []string{"-store", where, "runs", "list", "-colour"}, 2, "flowline: runs list: flag provided but not defined: -colour"},
		{"BadSince", []string{"-store", where, "runs", "list", "-since", "yesterday"}, 2, `flowline: -since: "yesterday" is not a duration (90m, 24h, 7d)`},
		{"BadLimit", []string{"-store", where, "runs", "list", "-limit", "-3"}, 2, "flowline: -limit must not be negative"},
		{"ShowWithoutID", []string{"-store", where, "runs", "show"}, 2, "flowline: runs show takes one argument, the run id (got 0)"},
		{"InvalidateWithoutPrefix", []string{"-store", where, "cache", "invalidate"}, 2, "flowline: cache invalidate takes one argument"},
		{"MissingFile", []string{"-store", filepath.Join(dir, "nope.db"), "runs", "list"}, 1,
			"flowline: no store at " + filepath.Join(dir, "nope.db") + ": the file does not exist"},
		{"Directory", []string{"-store", dir, "runs", "list"}, 1, "flowline: no store at " + dir + ": it is a directory, not a SQLite file"},
		{"NotSQLite", []string{"-store", writeFile(t, "not sqlite at all, just text, long enough to be a header"), "runs", "list"}, 1, "flowline: opening the SQLite store"},
		{"BadURL", []string{"-store", "postgres://user:secret@host:notaport/db", "runs", "list"}, 1, "flowline: bad Postgres URL"},
		{"Unreachable", []string{"-store", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1", "-timeout", "2s", "runs", "list"}, 1,
			"flowline: opening the Postgres store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := flowline(t, nil, tc.args...)
			assert.Equal(t, tc.code, r.code, "stderr: %s", r.stderr)
			assert.Contains(t, r.stderr, tc.stderr)
			assert.NotContains(t, r.stderr, "secret", "a password is never printed")
			assert.Empty(t, r.stdout)
			if tc.code == 2 {
				assert.Contains(t, r.stderr, "usage: flowline", "a usage error shows the usage")
			}
		})
	}
	assert.NoFileExists(t, filepath.Join(dir, "nope.db"), "flowline never creates a store")
	r := flowline(t, nil, "-h")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "usage: flowline")
}

func writeFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "text.db")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// TestRealRun looks at a store a real flow run wrote, then retries it
// through the command and lets flow.Serve perform the retry.
func TestRealRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runs.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	defer st.Close()
	down := true
	fetch := task.New("fetch", func(context.Context, struct{}) (string, error) {
		if down {
			return "", errors.New("upstream is down")
		}
		return "rows", nil
	}, task.Options{MaxRetries: 1})
	count := task.New("count", func(_ context.Context, s string) (int, error) { return len(s), nil }, task.Options{})
	b := flow.New("sync", flow.Options{})
	flow.Add(b, count, flow.Add(b, fetch, flow.Const(struct{}{})))
	f, err := b.Build()
	require.NoError(t, err)
	ex := pool.New(pool.Options{Workers: 2})
	defer ex.Shutdown(ctx)
	_, err = f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: "sync-1"})
	require.Error(t, err)

	r := flowline(t, nil, "-store", path, "runs", "show", "sync-1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `(?m)^State +Failed$`, r.stdout)
	assert.Regexp(t, `(?m)^fetch +Failed +2 .*upstream is down$`, r.stdout)
	assert.Regexp(t, `(?m)^fetch #1 +Retrying .*upstream is down$`, r.stdout)
	assert.Regexp(t, `(?m)^fetch #2 +Failed .*upstream is down$`, r.stdout)

	r = flowline(t, nil, "-store", path, "runs", "retry", "sync-1")
	require.Equal(t, 0, r.code, r.stderr)
	down = false
	sctx, stop := context.WithCancel(ctx)
	err = flow.Serve(sctx, ex, []*flow.Flow{f}, flow.ServeOptions{RunOptions: flow.RunOptions{Store: st},
		PollInterval: 10 * time.Millisecond, OnResult: func(*flow.Result, error) { stop() }})
	require.ErrorIs(t, err, context.Canceled)
	r = flowline(t, nil, "-store", path, "runs", "list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `(?m)^sync-1 +sync +Success +`, r.stdout)
	assert.NotContains(t, r.stdout, "requested")
}
