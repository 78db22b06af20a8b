package flow_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// The crash trials: a child process (this test binary, re-executed) runs
// a 1,000-task mapped flow on a pool of 8 with a store, and is SIGKILLed
// at a random point; a new process resumes the run. Each task appends its
// label to an effects file when it runs: a side effect outside the store,
// which counts what ran, and how often.
const (
	crashTasks   = 1000
	crashWorkers = 8
	crashWant    = crashTasks * crashTasks // sum of 2x+1 for x < n is n²
)

const (
	envCrashMode    = "FLOWLINE_CRASH_CHILD" // "run" or "resume"
	envCrashStore   = "FLOWLINE_CRASH_STORE" // "sqlite:<path>" or "postgres:<dsn>"
	envCrashRun     = "FLOWLINE_CRASH_RUN"
	envCrashEffects = "FLOWLINE_CRASH_EFFECTS"
)

// crashFlow is gen -> map work -> total; every task records its runs in
// effects.
func crashFlow(effects *os.File) (*flow.Flow, *flow.Node[int]) {
	note := func(label string) {
		if _, err := effects.WriteString(label + "\n"); err != nil { // one O_APPEND write: atomic
			panic(err)
		}
	}
	gen := task.New("gen", func(_ context.Context, n int) ([]int, error) {
		note("gen")
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}, task.Options{})
	work := task.New("work", func(_ context.Context, x int) (int, error) {
		note(fmt.Sprintf("work[%d]", x))
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
		return 2*x + 1, nil
	}, task.Options{})
	total := task.New("total", func(_ context.Context, xs []int) (int, error) {
		note("total")
		t := 0
		for _, x := range xs {
			t += x
		}
		return t, nil
	}, task.Options{})
	b := flow.New("crash", flow.Options{})
	sum := flow.Add(b, total, flow.Map(b, work, flow.Add(b, gen, flow.Const(crashTasks))))
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	return f, sum
}

func openCrashStore(ctx context.Context, spec string) (store.Store, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "sqlite":
		return sqlite.Open(ctx, arg, sqlite.Options{})
	case "postgres":
		return postgres.Open(ctx, arg, postgres.Options{})
	}
	return nil, fmt.Errorf("unknown store %q", spec)
}

// crashChild runs the child side of a crash trial when the environment
// asks for it, and exits.
func crashChild() {
	mode := os.Getenv(envCrashMode)
	if mode == "" {
		return
	}
	if err := runCrashChild(mode); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runCrashChild(mode string) error {
	ctx := context.Background()
	st, err := openCrashStore(ctx, os.Getenv(envCrashStore))
	if err != nil {
		return err
	}
	defer st.Close()
	effects, err := os.OpenFile(os.Getenv(envCrashEffects), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer effects.Close()
	f, sum := crashFlow(effects)
	ex := pool.New(pool.Options{Workers: crashWorkers})
	defer ex.Shutdown(ctx)
	id := os.Getenv(envCrashRun)
	var res *flow.Result
	switch mode {
	case "run":
		res, err = f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: id, LeaseTTL: 500 * time.Millisecond})
	case "resume":
		for {
			res, err = f.Resume(ctx, ex, id, flow.RunOptions{Store: st, LeaseTTL: 3 * time.Second})
			if !errors.Is(err, store.ErrLeaseHeld) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err != nil {
		return err
	}
	v, _ := flow.Value(res, sum)
	fmt.Printf("total=%d\n", v)
	return nil
}

// child starts a crash child.
func startChild(t *testing.T, mode, storeSpec, id, effects string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCrashMode+"="+mode, envCrashStore+"="+storeSpec, envCrashRun+"="+id, envCrashEffects+"="+effects)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	return cmd, &out
}

func lines(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// trialFigures are what one trial measured.
type trialFigures struct {
	ranBeforeKill, recorded, inFlight, reRun int
}

// crashTrial runs one trial: run, kill at a random point, resume with
// resumers processes at once, check.
func crashTrial(t *testing.T, storeSpec string, resumers int, dir string, trial int) trialFigures {
	id := fmt.Sprintf("crash-%d", trial)
	effects := filepath.Join(dir, fmt.Sprintf("effects-%d", trial))
	ctx := context.Background()
	st, err := openCrashStore(ctx, storeSpec)
	require.NoError(t, err)
	defer st.Close()
	complete := func() map[string]bool {
		trs, err := st.TaskRuns(ctx, id)
		require.NoError(t, err)
		done := map[string]bool{}
		for _, tr := range trs {
			var s task.State
			require.NoError(t, s.UnmarshalText([]byte(tr.State)))
			if s.Final() {
				done[tr.Label] = true
			}
		}
		return done
	}
	// Even trials die after a random number of tasks started, odd ones
	// after a random number were recorded complete: early kills with
	// much in flight, and late ones with much recorded.
	target := 1 + rand.IntN(crashTasks)
	reached := func() bool { return len(lines(t, effects)) >= target }
	if trial%2 == 1 {
		reached = func() bool { return len(complete()) >= target }
	}
	cmd, out := startChild(t, "run", storeSpec, id, effects)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(time.Minute)
poll:
	for !reached() && time.Now().Before(deadline) {
		select {
		case <-exited:
			break poll
		case <-time.After(time.Millisecond):
		}
	}
	_ = cmd.Process.Kill() // SIGKILL: no deferred code, no goodbye write
	<-exited
	before := lines(t, effects)
	recorded := complete()
	require.NotEmpty(t, before, "child output:\n%s", out)
	ranBefore := map[string]int{}
	for _, l := range before {
		ranBefore[l]++
	}
	inFlight := 0
	for l := range ranBefore {
		if !recorded[l] {
			inFlight++
		}
	}

	// Resume, with resumers processes racing for the run.
	var wg sync.WaitGroup
	outs := make([]string, resumers)
	errs := make([]error, resumers)
	for k := range resumers {
		c, o := startChild(t, "resume", storeSpec, id, effects)
		wg.Go(func() {
			errs[k] = c.Wait()
			outs[k] = o.String()
		})
	}
	wg.Wait()
	for k := range resumers {
		require.NoError(t, errs[k], "resumer %d:\n%s", k, outs[k])
		assert.Contains(t, outs[k], fmt.Sprintf("total=%d\n", crashWant), "resumer %d: the result equals an uninterrupted run's", k)
	}
	after := lines(t, effects)[len(before):]
	seen := map[string]int{}
	reRun := 0
	for _, l := range after {
		seen[l]++
		assert.False(t, recorded[l], "trial %d: %s was recorded complete at the kill and ran again", trial, l)
		if ranBefore[l] > 0 {
			reRun++
		}
	}
	for l, n := range seen {
		assert.Equal(t, 1, n, "trial %d: %s ran %d times after the kill (two resumers drove the run?)", trial, l, n)
	}
	assert.LessOrEqual(t, reRun, inFlight, "trial %d: re-runs are at most the task runs in flight at the kill", trial)
	for x := range crashTasks {
		l := fmt.Sprintf("work[%d]", x)
		assert.True(t, ranBefore[l]+seen[l] > 0, "trial %d: %s never ran", trial, l)
	}
	rec, err := st.Run(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "Success", rec.State)
	return trialFigures{ranBeforeKill: len(before), recorded: len(recorded), inFlight: inFlight, reRun: reRun}
}

func TestCrashTrialsSQLite(t *testing.T) {
	dir := t.TempDir()
	const trials = 20
	total := trialFigures{}
	for trial := range trials {
		spec := "sqlite:" + filepath.Join(dir, fmt.Sprintf("runs-%d.db", trial))
		f := crashTrial(t, spec, 1, dir, trial)
		t.Logf("trial %2d: %4d task runs started before the kill, %4d recorded complete, %d in flight, %d ran again",
			trial, f.ranBeforeKill, f.recorded, f.inFlight, f.reRun)
		total.inFlight += f.inFlight
		total.reRun += f.reRun
		if t.Failed() {
			break
		}
	}
	t.Logf("%d trials: %d task runs in flight at the kills, %d ran again, none recorded complete ran again", trials, total.inFlight, total.reRun)
}

func TestCrashTrialsPostgresTwoResumers(t *testing.T) {
	dir := t.TempDir()
	const trials = 20
	total := trialFigures{}
	for trial := range trials {
		spec := "postgres:" + pgtest.Schema(t)
		f := crashTrial(t, spec, 2, dir, trial)
		t.Logf("trial %2d: %4d task runs started before the kill, %4d recorded complete, %d in flight, %d ran again",
			trial, f.ranBeforeKill, f.recorded, f.inFlight, f.reRun)
		total.inFlight += f.inFlight
		total.reRun += f.reRun
		if t.Failed() {
			break
		}
	}
	t.Logf("%d trials: %d task runs in flight at the kills, %d ran again, none recorded complete ran again", trials, total.inFlight, total.reRun)
}
