// Command quickstart is flowline's first demo: a small ETL flow run on the
// local executor. extract fetches the day's orders (its first attempt hits
// a connection reset and is retried), transform is mapped over the orders,
// once per order, with a 100ms limit (one order's first attempt hangs, times
// out and is retried), and load sums what transform produced. The day and
// the exchange rate are parameters. It prints the run's report and exits
// non-zero if the run did not go as described.
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -day 2025-02-01 -rate 0.9
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
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

func main() {
	day := flag.String("day", "2025-01-31", "the day whose orders to load")
	rate := flag.Float64("rate", 0.92, "EUR per USD")
	flag.Parse()
	if err := run(*day, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(dayArg string, rateArg float64) error {
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

	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	res, err := f.Run(context.Background(), ex, flow.RunOptions{
		Args: []flow.Arg{day.Set(dayArg), rate.Set(rateArg)},
	})
	if res != nil {
		fmt.Print(res.Report())
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
