// Command quickstart is flowline's first demo: a small ETL flow run on the
// local executor. extract fetches the day's orders (its first attempt hits
// a connection reset and is retried), transform is mapped over the orders,
// once per order, with a 100ms limit (one order's first attempt hangs, times
// out and is retried), and load sums what transform produced. The day and
// the exchange rate are parameters. It prints the run's report and exits
// non-zero if the run did not go as described.
//
// While it runs it shows a live progress line when stdout is a terminal,
// and plain lines otherwise; both come from the flow's state hook. With
// -trace and -svg it also writes the run's timeline, one lane per place
// attempts ran: a Trace Event Format file for chrome://tracing or
// ui.perfetto.dev, and an SVG picture.
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -day 2025-02-01 -rate 0.9
//	go run ./examples/quickstart -pool -trace run.json -svg run.svg
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
	"github.com/flowline-go/flowline/timeline"
)

// Order is one order of the day, in its own currency until transform.
type Order struct {
	ID       int
	Amount   float64
	Currency string
}

// convert is transform's input: an order and the day's rate.
type convert struct {
	Order Order
	Rate  float64 // EUR per USD
}

// config is what the flags say.
type config struct {
	day        string
	rate       float64
	pool       bool   // run on executor/pool instead of executor/local
	tracePath  string // write a Trace Event Format file here
	svgPath    string // write an SVG timeline here
	progressTo *os.File
}

func main() {
	var c config
	flag.StringVar(&c.day, "day", "2025-01-31", "the day whose orders to load")
	flag.Float64Var(&c.rate, "rate", 0.92, "EUR per USD")
	flag.BoolVar(&c.pool, "pool", false, "run on a pool of 4 workers instead of the local executor")
	flag.StringVar(&c.tracePath, "trace", "", "write the run's timeline as a Chrome/Perfetto trace to this file")
	flag.StringVar(&c.svgPath, "svg", "", "write the run's timeline as an SVG picture to this file")
	flag.Parse()
	c.progressTo = os.Stdout
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	dayArg, rateArg := c.day, c.rate
	var fetches atomic.Int32 // atomics: on a pool executor tasks run concurrently
	extract := task.New("extract", func(ctx context.Context, day string) ([]Order, error) {
		if fetches.Add(1) == 1 {
			return nil, errors.New("connection reset by peer") // retried after a short backoff
		}
		return []Order{{1, 20, "EUR"}, {2, 50, "USD"}, {3, 12.5, "EUR"}, {4, 100, "USD"}}, nil
	}, task.Options{MaxRetries: 2, RetryDelay: 50 * time.Millisecond})

	var hung atomic.Bool
	transform := task.New("transform", func(ctx context.Context, in convert) (Order, error) {
		if in.Order.ID == 2 && hung.CompareAndSwap(false, true) { // a slow rates service, the first time
			<-ctx.Done() // the 100ms limit cancels the context
			return Order{}, context.Cause(ctx)
		}
		o := in.Order
		if o.Currency == "USD" {
			o.Amount, o.Currency = math.Round(o.Amount*in.Rate*100)/100, "EUR"
		}
		return o, nil
	}, task.Options{Timeout: 100 * time.Millisecond, MaxRetries: 1})

	load := task.New("load", func(ctx context.Context, orders []Order) (float64, error) {
		total := 0.0
		for _, o := range orders {
			total += o.Amount
		}
		task.Logger(ctx).Info("loaded", "orders", len(orders))
		return total, nil
	}, task.Options{})

	// The flow: extract -> transform (once per order) -> load.
	b := flow.New("orders", flow.Options{Timeout: 5 * time.Second})
	day := flow.Param[string](b, "day")
	rate := flow.ParamOr(b, "rate", 0.92)
	orders := flow.Add(b, extract, day)
	converted := flow.MapWith(b, transform, orders, rate, func(o Order, r float64) convert { return convert{o, r} })
	total := flow.Add(b, load, converted)
	f, err := b.Build()
	if err != nil {
		return err
	}

	var ex executor.Executor = local.New(local.Options{})
	if c.pool {
		ex = pool.New(pool.Options{Workers: 4})
	}
	defer ex.Shutdown(context.Background())
	progress := newProgress(c.progressTo)
	res, err := f.Run(context.Background(), ex, flow.RunOptions{
		Args:    []flow.Arg{day.Set(dayArg), rate.Set(rateArg)},
		OnState: progress.change,
	})
	progress.end()
	if res != nil {
		fmt.Print(res.Report())
		executorName := "local"
		if c.pool {
			executorName = "pool, 4 workers"
		}
		if err := writeTimeline(res, executorName, c.tracePath, c.svgPath); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	sum, _ := flow.Value(res, total)
	fmt.Printf("loaded %s: %.2f EUR\n", dayArg, sum)

	// Exit non-zero unless the run went as described above.
	want := 20 + math.Round(50*rateArg*100)/100 + 12.5 + math.Round(100*rateArg*100)/100
	if math.Abs(sum-want) > 1e-9 {
		return fmt.Errorf("total %.2f, want %.2f", sum, want)
	}
	if ext, _ := res.Task("extract"); len(ext.Attempts) != 2 {
		return fmt.Errorf("extract made %d attempts, want 2 (one retry)", len(ext.Attempts))
	}
	slow, _ := res.Task("transform[1]")
	if len(slow.Attempts) != 2 || !errors.Is(slow.Attempts[0].Err, executor.ErrTimeout) {
		return fmt.Errorf("transform[1] should have timed out once, then succeeded: %+v", slow.Attempts)
	}
	return nil
}

// progress shows the run as it goes, from the flow's state hook: one line
// rewritten in place on a terminal, a line per notable change otherwise.
type progress struct {
	out      *os.File
	terminal bool
	running  map[string]int // label -> attempt
	finished int
	retries  int
}

func newProgress(out *os.File) *progress {
	fi, err := out.Stat()
	return &progress{out: out, terminal: err == nil && fi.Mode()&os.ModeCharDevice != 0, running: map[string]int{}}
}

// change is the hook; it runs on the flow's scheduler loop, so it only
// formats a line.
func (p *progress) change(c task.Change) {
	switch {
	case c.To == task.Running:
		p.running[c.Task] = c.Attempt
	case c.To == task.Retrying:
		delete(p.running, c.Task)
		p.retries++
		if !p.terminal {
			fmt.Fprintf(p.out, "  %-14s retrying after attempt %d: %v\n", c.Task, c.Attempt, c.Err)
		}
	case c.To.Final():
		delete(p.running, c.Task)
		p.finished++
		if !p.terminal {
			fmt.Fprintf(p.out, "  %-14s %v\n", c.Task, c.To)
		}
	}
	if p.terminal {
		fmt.Fprintf(p.out, "\r\033[K%s", p.line())
	}
}

// line is the progress line: counts, then the running task runs that make
// attempts, in label order, each with its attempt. A mapped node makes no
// attempt of its own (its Change.Attempt stays 0): it is named as mapped,
// and only when none of its children is running.
func (p *progress) line() string {
	line := fmt.Sprintf("%d done, %d retried, %d running", p.finished, p.retries, len(p.running))
	labels := slices.Sorted(maps.Keys(p.running))
	var shown []string
	for _, label := range labels {
		if p.running[label] > 0 {
			shown = append(shown, fmt.Sprintf("%s (attempt %d)", label, p.running[label]))
		}
	}
	if len(shown) == 0 {
		for _, label := range labels {
			shown = append(shown, label+" (mapped)")
		}
	}
	const most = 3
	if len(shown) > most {
		shown = append(shown[:most], fmt.Sprintf("+%d more", len(shown)-most))
	}
	if len(shown) > 0 {
		line += ": " + strings.Join(shown, ", ")
	}
	return line
}

// end ends the progress line on a terminal.
func (p *progress) end() {
	if p.terminal {
		fmt.Fprint(p.out, "\r\033[K")
	}
}

// writeTimeline writes the run's timeline where the flags ask.
func writeTimeline(res *flow.Result, executorName, tracePath, svgPath string) error {
	tl := timeline.FromRun(res)
	tl.Executor = executorName
	for _, out := range []struct {
		path  string
		write func(*os.File) error
	}{
		{tracePath, func(f *os.File) error { return tl.WriteTrace(f) }},
		{svgPath, func(f *os.File) error { return tl.WriteSVG(f) }},
	} {
		if out.path == "" {
			continue
		}
		f, err := os.Create(out.path)
		if err != nil {
			return err
		}
		if err := out.write(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Println("wrote", out.path)
	}
	return nil
}
