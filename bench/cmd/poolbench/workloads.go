package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/alitto/pond/v2"
	"github.com/panjf2000/ants/v2"
	conc "github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
)

type sizes struct {
	noop, sleep, limit, late int
}

var (
	fullSizes  = sizes{noop: 1_000_000, sleep: 100_000, limit: 1_000_000, late: 10_000}
	quickSizes = sizes{noop: 200_000, sleep: 20_000, limit: 200_000, late: 2_000}
)

const (
	sleepFor    = 10 * time.Millisecond
	sleepConc   = 10_000
	neverLimit  = time.Second
	lateLimit   = 5 * time.Millisecond
	lateOverrun = 50 * time.Millisecond // how long an overrunning task would run
)

// lateConcs are the loads of the lateness tables: calls in flight.
var lateConcs = []int{100, 1000}

var bg = context.Background()

func noop() {}

func workloads(sz sizes) []table {
	procs := runtime.GOMAXPROCS(0)
	var ts []table
	for _, c := range []int{procs, 1000} {
		ts = append(ts, table{
			title: fmt.Sprintf("%d no-op tasks, concurrency %d", sz.noop, c),
			n:     sz.noop,
			rows:  throughputRows(sz.noop, c, noop),
		})
	}
	ts = append(ts, table{
		title: fmt.Sprintf("%d tasks sleeping %v, concurrency %d", sz.sleep, sleepFor, sleepConc),
		n:     sz.sleep,
		rows:  throughputRows(sz.sleep, sleepConc, func() { time.Sleep(sleepFor) }),
	})
	ts = append(ts, limitTable(sz.limit, procs))
	for _, c := range lateConcs {
		ts = append(ts, lateTable(sz.late, c))
	}
	return ts
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// flowlineRun runs n calls of body on a pool of c workers, with Go or
// with Submit (dropping the futures), and waits for all of them with a
// WaitGroup that the task marks, as ants is measured; Shutdown then stops
// the pool (it would cancel calls still queued, so it cannot be the wait).
func flowlineRun(n, c int, limit time.Duration, future bool, body func()) func() []time.Duration {
	return flowlineRunOf(n, c, limit, future, false, body)
}

// flowlineRunOf is flowlineRun; with distinct set, every call is another
// attempt, so no two calls have the same identity.
func flowlineRunOf(n, c int, limit time.Duration, future, distinct bool, body func()) func() []time.Duration {
	return func() []time.Duration {
		var wg sync.WaitGroup
		h := executor.NewHandler("task", func(context.Context, struct{}) (struct{}, error) {
			body()
			wg.Done()
			return struct{}{}, nil
		}, nil)
		call := executor.Call{Handler: h, RunID: "bench", Attempt: 1, Limit: limit}
		ex := pool.New(pool.Options{Workers: c})
		for i := range n {
			wg.Add(1)
			if distinct {
				call.Attempt = i + 1
			}
			if future {
				_, err := ex.Submit(bg, call)
				must(err)
			} else {
				must(ex.Go(bg, call))
			}
		}
		wg.Wait()
		must(ex.Shutdown(bg))
		return nil
	}
}

// throughputRows are the contenders for n tasks of body at concurrency c.
// Every func handed to a pool is made once, outside the loop, so that no
// contender pays for a closure per task.
func throughputRows(n, c int, body func()) []row {
	return []row{
		{name: "flowline pool Go + WaitGroup (no future)", kind: flowline, run: flowlineRun(n, c, 0, false, body)},
		{name: "flowline pool Submit + WaitGroup (future dropped)", kind: flowline, run: flowlineRun(n, c, 0, true, body)},
		{name: "flowline pool Go + WaitGroup, a new attempt each call (distinct identities)", kind: flowline,
			run: flowlineRunOf(n, c, 0, false, true, body)},
		{name: "errgroup SetLimit", kind: peer, run: func() []time.Duration {
			var g errgroup.Group
			g.SetLimit(c)
			f := func() error { body(); return nil }
			for range n {
				g.Go(f)
			}
			must(g.Wait())
			return nil
		}},
		{name: "conc pool", kind: peer, run: func() []time.Duration {
			p := conc.New().WithMaxGoroutines(c)
			for range n {
				p.Go(body)
			}
			p.Wait()
			return nil
		}},
		{name: "ants/v2 Submit + WaitGroup", kind: peer, run: func() []time.Duration {
			p, err := ants.NewPool(c)
			must(err)
			var wg sync.WaitGroup
			f := func() { body(); wg.Done() }
			for range n {
				wg.Add(1)
				must(p.Submit(f))
			}
			wg.Wait()
			p.Release()
			return nil
		}},
		{name: "pond/v2 Go (no future)", kind: peer, run: func() []time.Duration {
			p := pond.NewPool(c)
			for range n {
				must(p.Go(body))
			}
			p.StopAndWait()
			return nil
		}},
		{name: "pond/v2 Go + WaitGroup (waited for as flowline is)", kind: peer, run: func() []time.Duration {
			p := pond.NewPool(c)
			var wg sync.WaitGroup
			f := func() { body(); wg.Done() }
			for range n {
				wg.Add(1)
				must(p.Go(f))
			}
			wg.Wait()
			p.StopAndWait()
			return nil
		}},
		{name: "pond/v2 Submit (future)", kind: peer, run: func() []time.Duration {
			p := pond.NewPool(c)
			for range n {
				p.Submit(body)
			}
			p.StopAndWait()
			return nil
		}},
		{name: "goroutine per task + semaphore", kind: peer, run: func() []time.Duration {
			sem := make(chan struct{}, c)
			var wg sync.WaitGroup
			f := func() { body(); <-sem; wg.Done() }
			for range n {
				sem <- struct{}{}
				wg.Add(1)
				go f()
			}
			wg.Wait()
			return nil
		}},
		{name: "floor: fixed workers reading a chan func()", kind: floor, run: func() []time.Duration {
			ch := make(chan func(), pool.DefaultQueue)
			var wg sync.WaitGroup
			for range c {
				wg.Go(func() {
					for f := range ch {
						f()
					}
				})
			}
			for range n {
				ch <- body
			}
			close(ch)
			wg.Wait()
			return nil
		}},
		{name: "floor + WaitGroup (its tasks marked as flowline's are)", kind: floor, run: func() []time.Duration {
			ch := make(chan func(), pool.DefaultQueue)
			var workers, tasks sync.WaitGroup
			for range c {
				workers.Go(func() {
					for f := range ch {
						f()
					}
				})
			}
			f := func() { body(); tasks.Done() }
			for range n {
				tasks.Add(1)
				ch <- f
			}
			tasks.Wait()
			close(ch)
			workers.Wait()
			return nil
		}},
	}
}

// limitTable: limits that never fire. flowline with and without a limit;
// peers pay a context.WithTimeout per task, the usual way to give each task
// a deadline with them.
func limitTable(n, c int) table {
	withTimeout := func() {
		ctx, cancel := context.WithTimeout(bg, neverLimit)
		_ = ctx.Err() // the task "looks at" its context
		cancel()
	}
	peers := throughputRows(n, c, withTimeout)[3:10] // errgroup .. semaphore
	for i := range peers {
		peers[i].name += " + WithTimeout"
	}
	rows := []row{
		{name: "flowline pool Go, no limit", kind: flowline, run: flowlineRun(n, c, 0, false, noop)},
		{name: "flowline pool Go, 1s limit", kind: flowline, base: "flowline pool Go, no limit", run: flowlineRun(n, c, neverLimit, false, noop)},
		{name: "flowline pool Submit, no limit", kind: flowline, run: flowlineRun(n, c, 0, true, noop)},
		{name: "flowline pool Submit, 1s limit", kind: flowline, base: "flowline pool Submit, no limit", run: flowlineRun(n, c, neverLimit, true, noop)},
	}
	return table{
		title: fmt.Sprintf("%d no-op tasks with a %v limit that never fires, concurrency %d", n, neverLimit, c),
		note: "Peers have no per-task limit of their own: they run each task under a context.WithTimeout, " +
			"the usual way to give it a deadline. \"vs no limit\" compares a flowline row with the same API without a limit.",
		n:    n,
		rows: append(rows, peers...),
	}
}

// lateTable: tasks that overrun their limit, conc of them in flight at
// every moment; how long after the deadline the caller learns of the
// timeout.
func lateTable(n, conc int) table {
	return table{
		title: fmt.Sprintf("%d tasks overrunning a %v limit, %d in flight: lateness of the answer", n, lateLimit, conc),
		note: "Each task watches its context and would run " + lateOverrun.String() + "; the lateness is " +
			"from the task's ctx.Deadline() to the moment the caller has the answer. pool: the Future completes with " +
			"the *executor.TimeoutError (observed with Future.OnDone, as a scheduler does), " + fmt.Sprint(conc) +
			" workers. local: Submit returns it, on " + fmt.Sprint(conc) + " submitting goroutines. " +
			"The baseline is what a program without flowline does: a goroutine per call (" + fmt.Sprint(conc) +
			" at a time) running the same task under context.WithTimeout and noting when it sees ctx.Done(). " +
			"Ratios are to the baseline.",
		n:       n,
		latency: true,
		rows: []row{
			{name: "flowline pool Submit, 5ms limit", kind: flowline, run: func() []time.Duration { return poolLate(n, conc) }},
			{name: "flowline local Submit, 5ms limit", kind: flowline, run: func() []time.Duration { return localLate(n, conc) }},
			{name: "baseline: goroutine + context.WithTimeout + select", kind: peer, run: func() []time.Duration { return peerLate(n, conc) }},
		},
	}
}

// overrun waits for its context or lateOverrun, whichever comes first.
func overrun(ctx context.Context) {
	t := time.NewTimer(lateOverrun)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// overrunHandler is the overrunning task; it notes its deadline in
// deadlines[i].
func overrunHandler(deadlines []time.Time) *executor.Handler {
	return executor.NewHandler("overrun", func(ctx context.Context, i int) (struct{}, error) {
		deadlines[i], _ = ctx.Deadline()
		overrun(ctx)
		return struct{}{}, nil
	}, nil)
}

func poolLate(n, conc int) []time.Duration {
	deadlines := make([]time.Time, n)
	answered := make([]time.Time, n)
	h := overrunHandler(deadlines)
	ex := pool.New(pool.Options{Workers: conc})
	var wg sync.WaitGroup
	for i := range n {
		f, err := ex.Submit(bg, executor.Call{Handler: h, Input: i, RunID: "late", Attempt: 1, Limit: lateLimit})
		must(err)
		wg.Add(1)
		f.OnDone(func() { answered[i] = time.Now(); wg.Done() })
	}
	wg.Wait()
	must(ex.Shutdown(bg)) // orders the tasks' writes before the reads below
	late := make([]time.Duration, 0, n)
	for i := range n {
		late = append(late, answered[i].Sub(deadlines[i]))
	}
	return late
}

func localLate(n, conc int) []time.Duration {
	deadlines := make([]time.Time, n)
	answered := make([]time.Time, n)
	h := overrunHandler(deadlines)
	ex := local.New(local.Options{})
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := ex.Submit(bg, executor.Call{Handler: h, Input: i, RunID: "late", Attempt: 1, Limit: lateLimit})
			answered[i] = time.Now()
			must(err)
		})
	}
	wg.Wait()
	must(ex.Shutdown(bg)) // orders the tasks' writes before the reads below
	late := make([]time.Duration, 0, n)
	for i := range n {
		late = append(late, answered[i].Sub(deadlines[i]))
	}
	return late
}

func peerLate(n, conc int) []time.Duration {
	late := make([]time.Duration, n)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(bg, lateLimit)
			defer cancel()
			d, _ := ctx.Deadline()
			overrun(ctx)
			late[i] = time.Since(d)
		})
	}
	wg.Wait()
	return late
}
