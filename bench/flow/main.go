// Command flowbench measures the flow runner's scheduling overhead with
// empty tasks, side by side with go-taskflow v1.2.0, on the shapes
// go-taskflow benchmarks (a chain, a fan-out/fan-in, a lattice) and on a
// layered DAG of 100,000 tasks; then the peak memory of a 1,000,000-task
// flow, each contender in a child process of its own.
//
//	cd bench/flow && go run . -quick   # under a minute
//	cd bench/flow && go run .          # more rounds
//
// Contenders run interleaved, round after round, in one process; each
// figure is the median over rounds. Times are run-only: flows are built
// once, before timing, as go-taskflow's own benchmarks do.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	gtf "github.com/noneback/go-taskflow"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// contender runs one shape: prepare builds it and returns a run function
// and a cleanup.
type contender struct {
	name    string
	prepare func(s shape) (run func(), done func())
}

const workers = 2

var contenders = []contender{
	{"flowline, executor/local", func(s shape) (func(), func()) {
		ex := local.New(local.Options{})
		return runFlow(buildFlow(s), ex), func() { _ = ex.Shutdown(context.Background()) }
	}},
	{fmt.Sprintf("flowline, executor/pool(%d)", workers), func(s shape) (func(), func()) {
		ex := pool.New(pool.Options{Workers: workers})
		return runFlow(buildFlow(s), ex), func() { _ = ex.Shutdown(context.Background()) }
	}},
	{"floor: a new task.Runner + executor/local Submit per task, no flow", func(s shape) (func(), func()) {
		// A task run the plain way: a new task.Runner, Submit's Future
		// and a copy of the record for each task (three allocations,
		// where a flow makes one). Kept so that the tables of earlier
		// runs compare; the row below is the tighter floor.
		ex := local.New(local.Options{})
		n := s.tasks()
		recs := make([]task.Result, n)
		return func() {
			ctx := context.Background()
			for i := range n {
				r := task.NewRunner(empty, nil, task.RunOptions{RunID: "bench/t", Label: "t"})
				call := r.Start()
				f, err := ex.Submit(ctx, call)
				if err != nil {
					panic(err)
				}
				v, err, _ := f.Result()
				r.AttemptDone(call.Attempt, v, err, f.Worker())
				recs[i] = r.Result()
			}
		}, func() { _ = ex.Shutdown(context.Background()) }
	}},
	{"floor: task.Runner + executor/local as a flow uses them, no graph", func(s shape) (func(), func()) {
		// What the flow's graph adds is the difference to this row: the
		// same per-task work as a flow on executor/local without the
		// graph. One Runner reset for each task (Runner.Reset), its
		// attempt record in a slab made per run, one Future reset for
		// each call (executor.FutureSubmitter), and the records of a run
		// in a slice made per run, as the flow's Result keeps them; and
		// one clock reading per task, as the flow's clock gives: an
		// attempt's end is the next one's start, and a reading is the
		// monotonic time since a time.Now of at most a second before. The
		// records are stored field by field, as the flow stores them.
		ex := local.New(local.Options{})
		n := s.tasks()
		var f executor.Future
		var reading, anchor time.Time
		fresh := false
		clock := func() time.Time {
			if fresh {
				fresh = false
				return reading
			}
			if d := time.Since(anchor); !anchor.IsZero() && d < time.Second {
				reading = anchor.Add(d)
			} else {
				anchor = time.Now()
				reading = anchor
			}
			fresh = true
			return reading
		}
		return func() {
			ctx := context.Background()
			recs := make([]task.Result, n)
			attempts := make([]task.Attempt, n)
			r := task.NewRunner(empty, nil, task.RunOptions{RunID: "bench/t", Label: "t"})
			fresh = false
			for i := range n {
				r.Reset(empty, nil, task.RunOptions{RunID: "bench/t", Label: "t", Attempts: attempts[i : i : i+1], Clock: clock})
				call := r.Start()
				f.Reset()
				if err := ex.SubmitFuture(ctx, call, &f); err != nil {
					panic(err)
				}
				fresh = false // the task ran in SubmitFuture
				v, err, _ := f.Result()
				r.AttemptDone(call.Attempt, v, err, f.Worker())
				res, rec := r.Take(), &recs[i]
				rec.Task, rec.RunID, rec.State = res.Task, res.RunID, res.State
				rec.Value, rec.Err, rec.Attempts = res.Value, res.Err, res.Attempts
				rec.Start, rec.End, rec.Waited = res.Start, res.End, res.Waited
			}
		}, func() { _ = ex.Shutdown(context.Background()) }
	}},
	{fmt.Sprintf("go-taskflow v1.2.0 (%d)", workers), func(s shape) (func(), func()) {
		ex := gtf.NewExecutor(workers)
		tf := buildTaskflow(s)
		return func() { ex.Run(tf).Wait() }, func() {}
	}},
}

func runFlow(f *flow.Flow, ex executor.TimeoutHandler) func() {
	return func() {
		if _, err := f.Run(context.Background(), ex, flow.RunOptions{RunID: "bench"}); err != nil {
			panic(err)
		}
	}
}

func main() {
	quick := flag.Bool("quick", false, "fewer rounds (under a minute)")
	child := flag.String("child", "", "internal: run the 1M-task flow for one contender and report memory")
	tasks1M := flag.Int("big", 1_000_000, "tasks of the memory test (layers of 1000)")
	flag.Parse()
	if *child != "" {
		bigChild(*child, *tasks1M)
		return
	}

	rounds := 7
	if *quick {
		rounds = 3
	}
	fmt.Printf("flowbench: %s, GOMAXPROCS=%d, %s, load average %s, %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), cpuModel(), loadavg(), time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("empty tasks, run-only, median of %d interleaved rounds; ns/task is wall time, CPU ns/task is user+system time of all threads (GC included)\n\n", rounds)
	fmt.Println("| shape | tasks | contender | ns/task | CPU ns/task | allocs/task | B/task |")
	fmt.Println("|---|---:|---|---:|---:|---:|---:|")
	for _, sc := range []struct {
		s    shape
		runs int // runs per round
	}{
		{chain(512), 100},
		{fanOutIn(512), 100},
		{lattice(32), 50},
		{layers(100, 1000), 2},
	} {
		measure(sc.s, sc.runs, rounds)
	}

	fmt.Printf("\n%d-task flow (layers of 1000, 2 deps each), one run per contender, each in its own process:\n\n", *tasks1M)
	fmt.Println("| contender | build | run | ns/task | peak RSS after build | peak RSS | RSS/task |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, c := range contenders {
		out, err := exec.Command(os.Args[0], "-child", c.name, "-big", strconv.Itoa(*tasks1M)).CombinedOutput()
		if err != nil {
			fmt.Printf("| %s | failed: %v: %s |\n", c.name, err, strings.TrimSpace(string(out)))
			continue
		}
		fmt.Print(string(out))
	}
	fmt.Printf("\nload average at the end: %s\n", loadavg())
}

type result struct {
	ns, cpu, allocs, bytes []float64
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func measure(s shape, runs, rounds int) {
	n := s.tasks()
	type prepared struct {
		run, done func()
	}
	ps := make([]prepared, len(contenders))
	for i, c := range contenders {
		run, done := c.prepare(s)
		run() // warm up
		ps[i] = prepared{run, done}
	}
	res := make([]result, len(contenders))
	for range rounds {
		for i := range contenders {
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			cpu0, start := cpuTime(), time.Now()
			for range runs {
				ps[i].run()
			}
			took, cpu := time.Since(start), cpuTime()-cpu0
			runtime.ReadMemStats(&m1)
			total := float64(runs * n)
			res[i].ns = append(res[i].ns, float64(took.Nanoseconds())/total)
			res[i].cpu = append(res[i].cpu, float64(cpu.Nanoseconds())/total)
			res[i].allocs = append(res[i].allocs, float64(m1.Mallocs-m0.Mallocs)/total)
			res[i].bytes = append(res[i].bytes, float64(m1.TotalAlloc-m0.TotalAlloc)/total)
		}
	}
	for i, c := range contenders {
		ps[i].done()
		fmt.Printf("| %s | %d | %s | %.0f | %.0f | %.1f | %.0f |\n", s.name, n, c.name,
			median(res[i].ns), median(res[i].cpu), median(res[i].allocs), median(res[i].bytes))
	}
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// bigChild builds and runs the big flow once and prints a table row.
func bigChild(name string, tasks int) {
	var c *contender
	for i := range contenders {
		if contenders[i].name == name {
			c = &contenders[i]
		}
	}
	if c == nil {
		fmt.Fprintln(os.Stderr, "flowbench: unknown contender", name)
		os.Exit(2)
	}
	s := layers(tasks/1000, 1000)
	start := time.Now()
	run, done := c.prepare(s)
	s.deps = nil // the shape's own memory is the benchmark's, not the contender's
	runtime.GC()
	built := time.Since(start)
	afterBuild := vmHWM()
	start = time.Now()
	run()
	took := time.Since(start)
	peak := vmHWM()
	done()
	fmt.Printf("| %s | %v | %v | %.0f | %d MiB | %d MiB | %d B |\n", name, built.Round(time.Millisecond),
		took.Round(time.Millisecond), float64(took.Nanoseconds())/float64(tasks), afterBuild>>20, peak>>20, peak/int64(tasks))
}

// vmHWM returns the process's peak resident set size, in bytes.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
