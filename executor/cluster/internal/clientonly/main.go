// Command clientonly is the smallest real program of the cluster executor
// against an external NATS: it submits one call to the NATS server at -url,
// or with -worker serves that task there. It exists to prove, by a test
// (TestClientOnlyProgramLinksNoServer) and by its binary size
// (docs/cluster.md), that such a program links no NATS server code.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/local"
)

var double = executor.NewHandler("clientonly.double", func(_ context.Context, n int) (int, error) {
	return 2 * n, nil
}, nil)

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "the NATS server to connect to")
	worker := flag.Bool("worker", false, "serve calls instead of submitting one")
	flag.Parse()
	if err := run(*url, *worker); err != nil {
		fmt.Fprintln(os.Stderr, "clientonly:", err)
		os.Exit(1)
	}
}

func run(url string, worker bool) error {
	conn := cluster.Connection{URL: url}
	if worker {
		reg, err := executor.NewRegistry(double)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		runner := local.New(local.Options{})
		defer runner.Shutdown(context.Background())
		return cluster.Serve(ctx, cluster.WorkerOptions{Connection: conn, Registry: reg, Executor: runner})
	}
	ex, err := cluster.New(cluster.Options{Connection: conn})
	if err != nil {
		return err
	}
	defer ex.Shutdown(context.Background())
	v, err := executor.Run(context.Background(), ex, executor.Call{Handler: double, Input: 21})
	if err != nil {
		return err
	}
	fmt.Println(v)
	return nil
}
