// Command poolbench compares flowline's pool executor with errgroup, conc,
// ants, pond, plain goroutines under a semaphore, and a floor of fixed
// workers reading a channel of funcs, on the same workloads in one process,
// contenders interleaved, each measurement repeated (median reported).
//
//	cd bench && go run ./cmd/poolbench          # full run, a few minutes
//	cd bench && go run ./cmd/poolbench -quick   # smaller counts, under a minute
//
// It prints Markdown tables: ns per task (wall time of submitting every
// task and waiting for all of them, pool start and stop included), CPU time
// per task (user+system, all goroutines: steadier than wall time on a
// loaded machine), heap allocations per task, peak heap in use and peak
// goroutine count above their levels before the run (sampled every
// millisecond), and the ratio of ns/task to the best peer on each line.
// The timeout table reports how late the answer came after the deadline.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

func main() {
	quick := flag.Bool("quick", false, "smaller task counts (the whole run takes well under a minute)")
	rounds := flag.Int("rounds", 3, "how many times each measurement is repeated; the median is reported")
	only := flag.String("only", "", "run only the rows whose table title or name contains this text")
	memprofile := flag.String("memprofile", "", "write an allocation profile (every allocation sampled) to this file")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *memprofile != "" {
		runtime.MemProfileRate = 1
		defer writeHeapProfile(*memprofile)
	}
	if *cpuprofile != "" {
		defer startCPUProfile(*cpuprofile)()
	}

	sz := fullSizes
	if *quick {
		sz = quickSizes
	}
	fmt.Printf("# poolbench (%s)\n\n", map[bool]string{true: "quick", false: "full"}[*quick])
	fmt.Printf("- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("- go: %s, GOMAXPROCS=%d, NumCPU=%d, kernel %s\n", runtime.Version(),
		runtime.GOMAXPROCS(0), runtime.NumCPU(), kernel())
	fmt.Printf("- load average before: %s\n", loadavg())
	fmt.Printf("- rounds: %d (contenders interleaved within each round; medians shown)\n\n", *rounds)

	tables := workloads(sz)
	if *only != "" {
		tables = filter(tables, *only)
	}
	results := make([][][]result, len(tables)) // table, row, round
	for t := range tables {
		results[t] = make([][]result, len(tables[t].rows))
	}
	// Warm up the runtime (goroutine and stack free lists, heap size) with
	// one untimed run of each table's last row, then rotate the order of
	// the rows from round to round, so that no contender is always the one
	// that follows another, or runs first on a cold runtime.
	for _, tab := range tables {
		fmt.Fprintf(os.Stderr, "\rwarm-up: %-60s", tab.title)
		tab.rows[len(tab.rows)-1].run()
	}
	for r := 0; r < *rounds; r++ {
		for t, tab := range tables {
			for k := range tab.rows {
				i := (k + r) % len(tab.rows)
				row := tab.rows[i]
				fmt.Fprintf(os.Stderr, "\rround %d/%d: %-60s", r+1, *rounds, tab.title+": "+row.name)
				results[t][i] = append(results[t][i], measure(tab.n, row.run))
			}
		}
	}
	fmt.Fprintf(os.Stderr, "\r%-80s\r", "")
	for t, tab := range tables {
		printTable(tab, results[t])
	}
	fmt.Printf("- load average after: %s\n", loadavg())
}

// table is one workload: rows of contenders run on the same tasks.
type table struct {
	title   string
	note    string
	n       int  // tasks per run
	latency bool // report lateness instead of throughput
	rows    []row
}

type row struct {
	name string
	kind kind
	base string // for flowline rows with a limit: the row to compare with
	run  func() []time.Duration
}

type kind int

const (
	flowline kind = iota
	peer
	floor
)

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func printTable(tab table, res [][]result) {
	fmt.Printf("## %s\n\n", tab.title)
	if tab.note != "" {
		fmt.Printf("%s\n\n", tab.note)
	}
	type agg struct {
		ns, cpu, allocs, peak, peakG float64
		p50, p99, max                time.Duration
	}
	aggs := make([]agg, len(tab.rows))
	best, bestP50 := -1.0, -1.0
	byName := map[string]int{}
	for i, rs := range res {
		var ns, cpu, allocs, peak, peakG []float64
		var p50, p99, mx []time.Duration
		for _, r := range rs {
			ns = append(ns, r.nsPerTask)
			cpu = append(cpu, r.cpuPerTask)
			allocs = append(allocs, r.allocsPerTask)
			peak = append(peak, r.peakMiB)
			peakG = append(peakG, float64(r.peakG))
			p50, p99, mx = append(p50, r.p50), append(p99, r.p99), append(mx, r.max)
		}
		aggs[i] = agg{median(ns), median(cpu), median(allocs), median(peak), median(peakG), median(p50), median(p99), median(mx)}
		byName[tab.rows[i].name] = i
		metric := aggs[i].ns
		if tab.latency {
			metric = float64(aggs[i].p99)
		}
		if tab.rows[i].kind == peer && (best < 0 || metric < best) {
			best = metric
		}
		if tab.latency && tab.rows[i].kind == peer && (bestP50 < 0 || float64(aggs[i].p50) < bestP50) {
			bestP50 = float64(aggs[i].p50)
		}
	}
	if tab.latency {
		fmt.Println("| contender | p50 late | p99 late | max late | p50 to baseline | p99 to baseline | CPU ns/task | allocs/task |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		for i, a := range aggs {
			fmt.Printf("| %s | %v | %v | %v | %s | %s | %.0f | %.2f |\n", tab.rows[i].name, round(a.p50), round(a.p99),
				round(a.max), ratio(float64(a.p50), bestP50), ratio(float64(a.p99), best), a.cpu, a.allocs)
		}
		fmt.Println()
		return
	}
	fmt.Println("| contender | ns/task | CPU ns/task | allocs/task | peak heap MiB | peak goroutines | ratio to best peer | vs no limit |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for i, a := range aggs {
		vs := ""
		if b := tab.rows[i].base; b != "" {
			vs = ratio(a.ns, aggs[byName[b]].ns)
		}
		fmt.Printf("| %s | %.0f | %.0f | %.2f | %.1f | %.0f | %s | %s |\n", tab.rows[i].name, a.ns, a.cpu, a.allocs, a.peak, a.peakG,
			ratio(a.ns, best), vs)
	}
	fmt.Println()
}

func ratio(x, best float64) string {
	if best <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x/best)
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d > time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return strings.TrimSpace(string(b))
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// filter keeps the rows whose table title or name contains s.
func filter(tables []table, s string) []table {
	var out []table
	for _, t := range tables {
		var rows []row
		for _, r := range t.rows {
			if strings.Contains(t.title, s) || strings.Contains(r.name, s) {
				rows = append(rows, r)
			}
		}
		if len(rows) > 0 {
			t.rows = rows
			out = append(out, t)
		}
	}
	return out
}

func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "poolbench:", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, "poolbench:", err)
	}
}

func startCPUProfile(path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "poolbench:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "poolbench:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
