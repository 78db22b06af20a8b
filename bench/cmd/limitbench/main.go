// Command limitbench measures what limits cost a flow run when they are
// not the bottleneck (issue 16: at least 0.9x the throughput of the same
// run without limits): a flow mapping short tasks over a pool of 8, run
// without limits, with a concurrency limit above the pool's size, with a
// rate limit above the run's rate, and with both, in memory; and the same
// concurrency limit kept in a SQLite store, shared as several processes
// would share it.
//
//	cd bench && go run ./cmd/limitbench            # 1 ms tasks and no-op tasks
//	cd bench && go run ./cmd/limitbench -rounds 9
//
// Variants run interleaved, round after round; each figure is the median
// over rounds, and each ratio is the variant's throughput over the
// unlimited run's, from the same rounds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

type variant struct {
	name   string
	uses   []limit.Use
	limits []limit.Limit
	store  bool
}

func main() {
	rounds := flag.Int("rounds", 5, "rounds per workload")
	flag.Parse()
	if err := run(*rounds); err != nil {
		fmt.Fprintln(os.Stderr, "limitbench:", err)
		os.Exit(1)
	}
}

func run(rounds int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "limitbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "limits.db"), sqlite.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	conc := limit.Limit{Name: "api", Concurrency: 64}
	rate := limit.Limit{Name: "vendor", Rate: 1_000_000, Per: time.Second, Burst: 1000}
	variants := []variant{
		{name: "no limits"},
		{name: "concurrency 64 (memory)", uses: []limit.Use{{Limit: "api"}}, limits: []limit.Limit{conc}},
		{name: "rate 1M/s (memory)", uses: []limit.Use{{Limit: "vendor"}}, limits: []limit.Limit{rate}},
		{name: "concurrency 64 + rate 1M/s by key (memory)",
			uses:   []limit.Use{{Limit: "api"}, limit.Keyed("vendor", func(x int) string { return fmt.Sprint(x % 10) })},
			limits: []limit.Limit{conc, rate}},
		{name: "concurrency 64 (SQLite store)", uses: []limit.Use{{Limit: "api"}}, limits: []limit.Limit{conc}, store: true},
	}
	fmt.Printf("limitbench: %d rounds, pool of 8 workers, GOMAXPROCS %d, %s\n\n", rounds, runtimeProcs(), time.Now().UTC().Format(time.RFC3339))
	for _, w := range []struct {
		name  string
		tasks int
		sleep time.Duration
	}{{"2,000 tasks of 1 ms", 2000, time.Millisecond}, {"20,000 no-op tasks", 20000, 0}} {
		times := make([][]time.Duration, len(variants))
		for range rounds {
			for k, v := range variants {
				d, err := once(ctx, v, w.tasks, w.sleep, st)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", w.name, v.name, err)
				}
				times[k] = append(times[k], d)
			}
		}
		fmt.Printf("%s\n%-46s %12s %14s %8s\n", w.name, "variant", "median", "task runs/s", "ratio")
		base := median(times[0])
		for k, v := range variants {
			m := median(times[k])
			fmt.Printf("%-46s %12v %14.0f %7.2fx\n", v.name, m.Round(time.Microsecond),
				float64(w.tasks)/m.Seconds(), base.Seconds()/m.Seconds())
		}
		fmt.Println()
	}
	return nil
}

func once(ctx context.Context, v variant, n int, sleep time.Duration, st *sqlite.Store) (time.Duration, error) {
	tk := task.New("work", func(_ context.Context, x int) (int, error) {
		if sleep > 0 {
			time.Sleep(sleep)
		}
		return x, nil
	}, task.Options{Limits: v.uses})
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	b := flow.New("limitbench", flow.Options{})
	flow.Map(b, tk, flow.Const(xs))
	f, err := b.Build()
	if err != nil {
		return 0, err
	}
	opts := limit.Options{}
	if v.store {
		opts.Store = st
	}
	var set *limit.Set
	if len(v.limits) > 0 {
		if set, err = limit.New(opts, v.limits...); err != nil {
			return 0, err
		}
		defer set.Close()
	}
	ex := pool.New(pool.Options{Workers: 8})
	defer func() { _ = ex.Shutdown(ctx) }()
	start := time.Now()
	if _, err := f.Run(ctx, ex, flow.RunOptions{Limits: set}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
