package flow_test

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// The environment of a Serve child process (TestServeTwoProcesses).
const (
	envServeDSN     = "FLOWLINE_SERVE_CHILD_DSN"
	envServeEffects = "FLOWLINE_SERVE_CHILD_EFFECTS"
	envServeFail    = "FLOWLINE_SERVE_CHILD_FAIL"
)

// serveChild, called from TestMain, plays a service process: it runs
// flow.Serve on the Postgres store of envServeDSN until its stdin is
// closed, then exits.
func serveChild() {
	dsn := os.Getenv(envServeDSN)
	if dsn == "" {
		return
	}
	if err := runServeChild(dsn); err != nil {
		fmt.Fprintln(os.Stderr, "serve child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runServeChild(dsn string) (err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // stdin closed: the parent asks us to stop
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var st store.Store
	if strings.HasPrefix(dsn, "postgres://") {
		st, err = postgres.Open(ctx, dsn, postgres.Options{})
	} else {
		st, err = sqlite.Open(ctx, dsn, sqlite.Options{})
	}
	if err != nil {
		return err
	}
	defer st.Close()
	effects, err := os.OpenFile(os.Getenv(envServeEffects), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer effects.Close()
	f, err := serveProcFlow(effects, os.Getenv(envServeFail))
	if err != nil {
		return err
	}
	held, err := holdFlow(effects, os.Getenv(envServeFail))
	if err != nil {
		return err
	}
	ex := pool.New(pool.Options{Workers: 4})
	defer ex.Shutdown(context.Background())
	err = flow.Serve(ctx, ex, []*flow.Flow{f, held}, flow.ServeOptions{
		RunOptions:   flow.RunOptions{Store: st, LeaseTTL: 2 * time.Second},
		PollInterval: 10 * time.Millisecond,
		OnResult: func(res *flow.Result, err error) {
			if res == nil || res.State != task.Success && !errors.Is(err, flow.ErrHandedOver) {
				fmt.Fprintf(os.Stderr, "serve child: run not a success: %v\n", err)
			}
		}})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// serveProcFlow is "load" -> "flaky" -> "report", each writing
// "<task> <run id> <pid>" to effects when it runs; flaky fails while the
// file failMarker exists.
func serveProcFlow(effects *os.File, failMarker string) (*flow.Flow, error) {
	note := func(ctx context.Context, name string) error {
		id, _ := task.Info(ctx)
		_, err := fmt.Fprintf(effects, "%s %s %d\n", name, id.RunID, os.Getpid())
		return err
	}
	load := task.New("load", func(ctx context.Context, _ struct{}) (int, error) { return 1, note(ctx, "load") }, task.Options{})
	flaky := task.New("flaky", func(ctx context.Context, n int) (int, error) {
		if err := note(ctx, "flaky"); err != nil {
			return 0, err
		}
		if _, err := os.Stat(failMarker); err == nil {
			return 0, errors.New("flaky: down")
		}
		return n + 1, nil
	}, task.Options{})
	report := task.New("report", func(ctx context.Context, n int) (int, error) { return n, note(ctx, "report") }, task.Options{})
	b := flow.New("served", flow.Options{})
	flow.Add(b, report, flow.Add(b, flaky, flow.Add(b, load, flow.Const(struct{}{}))))
	return b.Build()
}

// TestServeTwoProcesses: two child processes race flow.Serve on one
// Postgres store; every retry request is performed exactly once, and
// every expired run resumed once, as counted by side effects outside the
// store.
func TestServeTwoProcesses(t *testing.T) {
	dsn := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, dsn, postgres.Options{})
	require.NoError(t, err)
	defer st.Close()
	dir := t.TempDir()
	effectsPath, marker := filepath.Join(dir, "effects"), filepath.Join(dir, "fail")
	effects, err := os.OpenFile(effectsPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer effects.Close()
	f, err := serveProcFlow(effects, marker)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(marker, nil, 0o644))
	ex := newPool(t, 4)
	const retried, orphans = 12, 4
	for i := range retried {
		res, err := f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: fmt.Sprintf("r%d", i)})
		require.Error(t, err)
		require.Equal(t, task.Failed, res.State)
	}
	require.NoError(t, os.Remove(marker))

	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   strings.Builder
	}
	children := make([]*child, 2)
	for i := range children {
		c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$")}
		c.cmd.Env = append(os.Environ(), envServeDSN+"="+dsn, envServeEffects+"="+effectsPath, envServeFail+"="+marker)
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
		c.stdin, err = c.cmd.StdinPipe()
		require.NoError(t, err)
		children[i] = c
	}
	for _, c := range children {
		require.NoError(t, c.cmd.Start())
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for i, c := range children {
			_ = c.stdin.Close()
			assert.NoError(t, c.cmd.Wait(), "child %d:\n%s", i, c.out.String())
		}
	}
	defer stop()
	// Both children are looking (every 10 ms) when the work appears.
	time.Sleep(500 * time.Millisecond)
	for i := range orphans {
		require.NoError(t, st.CreateRun(ctx, store.Run{ID: fmt.Sprintf("orphan%d", i), Flow: "served", FlowHash: f.Hash(),
			Params: []byte(`{}`), Owner: "dead", LeaseExpires: time.Now().Add(-time.Second), Created: time.Now()}))
	}
	for i := range retried {
		require.NoError(t, st.RequestRetry(ctx, fmt.Sprintf("r%d", i)))
	}
	require.Eventually(t, func() bool {
		rs, err := st.Runs(ctx, store.RunFilter{States: []string{"Success"}})
		return err == nil && len(rs) == retried+orphans
	}, 60*time.Second, 10*time.Millisecond, "every run succeeds")
	time.Sleep(300 * time.Millisecond) // thirty more looks each: nothing more to do
	stop()

	data, err := os.ReadFile(effectsPath)
	require.NoError(t, err)
	count := map[string]int{}
	byPid := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.Fields(line)
		require.Len(t, parts, 3, "effect line %q", line)
		count[parts[0]+" "+parts[1]]++
		if parts[2] != fmt.Sprint(os.Getpid()) {
			byPid[parts[2]]++
		}
	}
	for i := range retried {
		id := fmt.Sprintf("r%d", i)
		assert.Equal(t, 1, count["load "+id+"/load"], "%s: load succeeded before, not run again", id)
		assert.Equal(t, 2, count["flaky "+id+"/flaky"], "%s: failed once, retried exactly once", id)
		assert.Equal(t, 1, count["report "+id+"/report"], "%s: ran once, in the retry", id)
	}
	for i := range orphans {
		id := fmt.Sprintf("orphan%d", i)
		for _, name := range []string{"load", "flaky", "report"} {
			assert.Equal(t, 1, count[name+" "+id+"/"+name], "%s: resumed once", id)
		}
	}
	rs, err := st.Runs(ctx, store.RunFilter{RetryRequested: true})
	require.NoError(t, err)
	assert.Empty(t, rs, "every request consumed")
	t.Logf("task runs per child process: %v", byPid)
}

// holdFlow is "hold" -> "after", each writing "<task> <run id> <pid>" to
// effects when it starts; hold then waits until the file release exists.
func holdFlow(effects *os.File, release string) (*flow.Flow, error) {
	note := func(ctx context.Context, name string) error {
		id, _ := task.Info(ctx)
		_, err := fmt.Fprintf(effects, "%s %s %d\n", name, id.RunID, os.Getpid())
		return err
	}
	hold := task.New("hold", func(ctx context.Context, _ struct{}) (int, error) {
		if err := note(ctx, "hold"); err != nil {
			return 0, err
		}
		for {
			if _, err := os.Stat(release); err == nil {
				return 1, nil
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}, task.Options{})
	after := task.New("after", func(ctx context.Context, n int) (int, error) { return n, note(ctx, "after") }, task.Options{})
	b := flow.New("held", flow.Options{})
	flow.Add(b, after, flow.Add(b, hold, flow.Const(struct{}{})))
	return b.Build()
}

// TestServeHandOverBetweenProcesses is a deploy: a service process drives
// a run and is asked to stop; its Serve hands the run over (not recorded
// as ended, lease released) and the next process resumes it at once and
// finishes it. Both processes share one SQLite file.
func TestServeHandOverBetweenProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	path, effectsPath, release := filepath.Join(dir, "runs.db"), filepath.Join(dir, "effects"), filepath.Join(dir, "release")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	defer st.Close()
	held, err := holdFlow(nil, release)
	require.NoError(t, err)
	require.NoError(t, st.CreateRun(ctx, store.Run{ID: "deploy", Flow: "held", FlowHash: held.Hash(),
		Params: []byte(`{}`), Owner: "dead", LeaseExpires: time.Now().Add(-time.Second), Created: time.Now()}))
	effects := func() string {
		b, err := os.ReadFile(effectsPath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return string(b)
	}
	start := func() (stop func() error, pid string) {
		var out strings.Builder
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envServeDSN+"="+path, envServeEffects+"="+effectsPath, envServeFail+"="+release)
		cmd.Stdout, cmd.Stderr = &out, &out
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		return func() error {
			_ = stdin.Close()
			err := cmd.Wait()
			if err != nil {
				t.Logf("child %d:\n%s", cmd.Process.Pid, out.String())
			}
			return err
		}, fmt.Sprint(cmd.Process.Pid)
	}

	stopA, pidA := start()
	require.Eventually(t, func() bool { return strings.Contains(effects(), "hold deploy/hold "+pidA+"\n") },
		30*time.Second, 5*time.Millisecond, "the first process drives the run")
	require.NoError(t, stopA(), "the first process stops cleanly")
	rec, err := st.Run(ctx, "deploy")
	require.NoError(t, err)
	assert.False(t, rec.Finished(), "handed over: not recorded as ended")
	assert.Equal(t, "", rec.Owner, "handed over: its lease released")

	require.NoError(t, os.WriteFile(release, nil, 0o644))
	stopB, pidB := start()
	require.Eventually(t, func() bool {
		r, err := st.Run(ctx, "deploy")
		return err == nil && r.State == "Success"
	}, 30*time.Second, 5*time.Millisecond, "the next process finishes the run")
	require.NoError(t, stopB())
	assert.Equal(t, "hold deploy/hold "+pidA+"\nhold deploy/hold "+pidB+"\nafter deploy/after "+pidB+"\n", effects(),
		"hold ran again in the next process (it was in flight), after once")
}

// TestServeTwoServersPostgres is TestServeTwoServersPerformEachRetryOnce
// on Postgres, in one process.
func TestServeTwoServersPostgres(t *testing.T) {
	st, err := postgres.Open(context.Background(), pgtest.Schema(t), postgres.Options{})
	require.NoError(t, err)
	defer st.Close()
	testTwoServers(t, st)
}
