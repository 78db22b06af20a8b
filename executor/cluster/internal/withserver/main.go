// Command withserver is clientonly with an embedded NATS server: it starts
// one (package natsserver), serves a task on it in process and submits one
// call. Its binary size, next to clientonly's, is what docs/cluster.md
// states the embedded server costs.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/local"
)

var double = executor.NewHandler("withserver.double", func(_ context.Context, n int) (int, error) {
	return 2 * n, nil
}, nil)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "withserver:", err)
		os.Exit(1)
	}
}

func run() error {
	srv, err := natsserver.Start(natsserver.Options{})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	conn := cluster.Connection{Server: srv}
	reg, err := executor.NewRegistry(double)
	if err != nil {
		return err
	}
	runner := local.New(local.Options{})
	defer runner.Shutdown(context.Background())
	w, err := cluster.NewWorker(cluster.WorkerOptions{Connection: conn, Registry: reg, Executor: runner})
	if err != nil {
		return err
	}
	defer w.Shutdown(context.Background())
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
