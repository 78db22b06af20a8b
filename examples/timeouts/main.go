// Command timeouts runs the same runaway task on the local, pool and
// subprocess executors and prints, honestly, what each did at its limit.
//
// The task burns a CPU core for a second without looking at its context,
// and starts a grandchild process that ignores SIGTERM. Its limit is 200ms.
// The soft executors (local, pool) answer at the limit but cannot stop it:
// they report the call abandoned, the grandchild is still alive when the
// answer comes, and Shutdown waits for the work to end. The subprocess
// executor kills the worker's whole process group (SIGTERM, then SIGKILL
// after a 300ms grace period) and reaps it before it answers: the
// grandchild is already dead.
//
// It exits non-zero if an executor did not do what it claims, or if any
// process it started is still alive at the end.
//
//	go run ./examples/timeouts
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/executor/subprocess"
	"github.com/flowline-go/flowline/internal/procgroup"
	"github.com/flowline-go/flowline/task"
)

// Job tells the runaway task where to write its grandchild's pid and how
// long to run.
type Job struct {
	PIDFile string
	Run     time.Duration
}

// runaway ignores its context: it spins for job.Run and keeps a grandchild
// that ignores SIGTERM alive meanwhile. It cleans up after itself if it is
// allowed to finish, so that soft executors, which cannot stop it, still
// leave nothing behind once it returns.
var runaway = task.New("runaway", func(ctx context.Context, job Job) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	child := exec.Command(self) // a grandchild that ignores SIGTERM: see main
	child.Env = append(os.Environ(), sleeperEnv+"=1")
	if err := child.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	if err := os.WriteFile(job.PIDFile, []byte(strconv.Itoa(child.Process.Pid)), 0o644); err != nil {
		return 0, err
	}
	spins := 0
	for start := time.Now(); time.Since(start) < job.Run; spins++ {
		// A CPU loop that never looks at ctx: nothing in process can stop it.
	}
	return spins, nil
}, task.Options{Timeout: 200 * time.Millisecond, Grace: 300 * time.Millisecond})

func registry() *executor.Registry {
	reg, err := task.NewRegistry(runaway)
	if err != nil {
		panic(err)
	}
	return reg
}

// sleeperEnv makes this program the runaway task's grandchild: it ignores
// SIGTERM and sleeps for 30s.
const sleeperEnv = "FLOWLINE_EXAMPLE_SLEEPER"

func main() {
	if os.Getenv(sleeperEnv) != "" {
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(30 * time.Second)
		return
	}
	// In a subprocess worker this serves the task and never returns.
	subprocess.ServeIfWorker(registry())
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "timeouts:", err)
		os.Exit(1)
	}
}

type outcome struct {
	name, enforcement          string
	answered, shutdown         time.Duration
	stopped                    bool
	grandchildAlive, abandoned bool
	pid                        int
}

func run() error {
	dir, err := os.MkdirTemp("", "flowline-timeouts-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	executors := []struct {
		name string
		new  func() (executor.Executor, error)
	}{
		{"local", func() (executor.Executor, error) { return local.New(local.Options{}), nil }},
		{"pool", func() (executor.Executor, error) { return pool.New(pool.Options{Workers: 2}), nil }},
		{"subprocess", func() (executor.Executor, error) { return subprocess.New(subprocess.Options{Workers: 1}) }},
	}
	var results []outcome
	var failures []string
	for _, e := range executors {
		ex, err := e.new()
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		o, err := try(e.name, ex, filepath.Join(dir, e.name+".pid"))
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		results = append(results, o)
		soft := o.enforcement == executor.Soft.String()
		switch {
		case soft && o.stopped:
			failures = append(failures, o.name+": a soft executor claimed the work stopped")
		case !soft && (!o.stopped || o.grandchildAlive):
			failures = append(failures, o.name+": the hard timeout left the process group alive")
		case soft && !o.abandoned:
			failures = append(failures, o.name+": the stubborn call was not counted as abandoned")
		}
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "executor\tenforcement\tanswered after\twork stopped\tgrandchild at the answer\tShutdown took")
	for _, o := range results {
		alive := "dead (killed and reaped)"
		if o.grandchildAlive {
			alive = "alive (abandoned with its task)"
		}
		fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%s\t%v\n", o.name, o.enforcement, o.answered.Round(time.Millisecond),
			o.stopped, alive, o.shutdown.Round(time.Millisecond))
	}
	w.Flush()
	fmt.Println()
	fmt.Println("soft: the caller is answered at the limit; work that ignores its context runs on,")
	fmt.Println("      counted in Stats.Abandoned, and Shutdown waits for it.")
	fmt.Println("hard: the answer comes once the whole process group is dead and reaped.")

	for _, o := range results {
		if processAlive(o.pid) {
			failures = append(failures, fmt.Sprintf("%s: grandchild %d still alive at the end", o.name, o.pid))
		}
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	fmt.Println("\nchecked: no process this program started is still alive.")
	return nil
}

// try runs the runaway task once on ex and reports what happened.
func try(name string, ex executor.Executor, pidFile string) (outcome, error) {
	o := outcome{name: name, enforcement: ex.Enforcement().String()}
	start := time.Now()
	res := task.Run(context.Background(), ex, runaway, Job{PIDFile: pidFile, Run: time.Second}, task.RunOptions{})
	o.answered = time.Since(start)

	var te *executor.TimeoutError
	if !errors.As(res.Err, &te) {
		_ = ex.Shutdown(context.Background())
		return o, fmt.Errorf("want a timeout, got %v: %v", res.State, res.Err)
	}
	o.stopped = te.Stopped
	o.abandoned = ex.Stats().Abandoned > 0
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return o, fmt.Errorf("the task did not start its grandchild: %w", err)
	}
	o.pid, _ = strconv.Atoi(string(data))
	o.grandchildAlive = processAlive(o.pid)

	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ex.Shutdown(ctx); err != nil {
		return o, err
	}
	o.shutdown = time.Since(start)
	return o, nil
}

// processAlive reports whether pid names a process, zombies included.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return procgroup.Alive(pid)
}
