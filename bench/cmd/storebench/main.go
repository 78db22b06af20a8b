// Command storebench measures what recording a flow run in a run store
// costs: recorded task runs per second for no-op tasks on a pool of 8,
// the p50 and p99 of one commit (one Store.Apply: a group of records), and
// a flow of 1 ms tasks with and without a store. SQLite always; Postgres
// when FLOWLINE_TEST_POSTGRES names a server (scripts/postgres-test-server).
//
//	go run ./cmd/storebench [-n 10000] [-sleep-n 10000] [-rounds 1]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

// timed records each Apply's duration.
type timed struct {
	store.Store
	mu   sync.Mutex
	took []time.Duration
}

func (s *timed) Apply(ctx context.Context, b *store.Batch) error {
	t := time.Now()
	err := s.Store.Apply(ctx, b)
	s.mu.Lock()
	s.took = append(s.took, time.Since(t))
	s.mu.Unlock()
	return err
}

func (s *timed) quantile(q float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := slices.Clone(s.took)
	slices.Sort(d)
	if len(d) == 0 {
		return 0
	}
	return d[int(q*float64(len(d)-1))]
}

func mapped(n int, sleep time.Duration) *flow.Flow {
	work := task.New("work", func(_ context.Context, x int) (int, error) {
		if sleep > 0 {
			time.Sleep(sleep)
		}
		return x, nil
	}, task.Options{})
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	b := flow.New("bench", flow.Options{})
	flow.Map(b, work, flow.Const(xs))
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	return f
}

func run(f *flow.Flow, st store.Store) time.Duration {
	ex := pool.New(pool.Options{Workers: 8})
	defer ex.Shutdown(context.Background())
	start := time.Now()
	opts := flow.RunOptions{}
	if st != nil {
		opts.Store = st
	}
	if _, err := f.Run(context.Background(), ex, opts); err != nil {
		panic(err)
	}
	return time.Since(start)
}

const postgresName = "postgres (local server)"

func main() {
	n := flag.Int("n", 10000, "no-op tasks")
	sleepN := flag.Int("sleep-n", 10000, "1 ms tasks")
	rounds := flag.Int("rounds", 1, "times the 1 ms flow runs with each store, each time right after a run without one; the ratio is the median of the rounds' ratios")
	flag.Parse()
	dir, err := os.MkdirTemp("", "storebench")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	stores := []struct {
		name string
		open func() store.Store
	}{{"sqlite (synchronous=FULL)", func() store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(dir, fmt.Sprint(time.Now().UnixNano())+".db"), sqlite.Options{})
		if err != nil {
			panic(err)
		}
		return s
	}}}
	if dsn := os.Getenv("FLOWLINE_TEST_POSTGRES"); dsn != "" {
		stores = append(stores, struct {
			name string
			open func() store.Store
		}{postgresName, func() store.Store {
			s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
			if err != nil {
				panic(err)
			}
			return s
		}})
	}
	noop, slow := mapped(*n, 0), mapped(*sleepN, time.Millisecond)
	run(noop, nil) // warm up
	c0 := selfCPU()
	base := run(noop, nil)
	baseCPU := selfCPU() - c0
	baseSlow := run(slow, nil)
	fmt.Printf("%-26s %14s %10s %10s %12s %12s %8s\n", "store", "no-op runs/s", "commit p50", "commit p99",
		"1ms flow", "no store", "ratio")
	fmt.Printf("%-26s %14.0f %10s %10s %12s %12s %8s\n", "none", float64(*n)/base.Seconds(), "-", "-",
		baseSlow.Round(time.Millisecond), baseSlow.Round(time.Millisecond), "1.00x")
	for _, s := range stores {
		st := &timed{Store: s.open()}
		pg := os.Getenv("FLOWLINE_TEST_POSTGRES_DATA")
		if s.name != postgresName {
			pg = ""
		}
		c0, s0 := selfCPU(), serverCPU(pg)
		d := run(noop, st)
		p50, p99 := st.quantile(0.5), st.quantile(0.99)
		_ = st.Close()
		time.Sleep(200 * time.Millisecond) // the server reaps the closed connections' backends
		client, server := selfCPU()-c0-baseCPU, serverCPU(pg)-s0
		// On a shared machine the load changes from one second to the
		// next: each round runs the flow without a store, then with one,
		// and the ratio is the rounds' median.
		var ratios []float64
		var ds, db time.Duration
		for r := 0; r < max(*rounds, 1); r++ {
			b := baseSlow
			if r > 0 || *rounds > 1 {
				b = run(slow, nil)
			}
			st2 := s.open()
			d := run(slow, st2)
			_ = st2.Close()
			ratios = append(ratios, d.Seconds()/b.Seconds())
			ds, db = ds+d, db+b
		}
		slices.Sort(ratios)
		k := len(ratios)
		fmt.Printf("%-26s %14.0f %10s %10s %12s %12s %7.2fx\n", s.name, float64(*n+1)/d.Seconds(),
			p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), (ds / time.Duration(k)).Round(time.Millisecond),
			(db / time.Duration(k)).Round(time.Millisecond), ratios[k/2])
		if k > 1 {
			fmt.Printf("%-26s ratios of %d rounds: min %.2fx, median %.2fx, max %.2fx\n", "", k, ratios[0], ratios[k/2], ratios[k-1])
		}
		if client > 0 || server > 0 {
			per := float64(*n+1) / 1000
			fmt.Printf("%-26s CPU per 1,000 no-op task runs recorded: flow %.0f ms, server %.0f ms (beyond the run without a store)\n", "",
				float64(client.Milliseconds())/per, float64(server.Milliseconds())/per)
		}
	}
}
