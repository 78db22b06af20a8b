package cluster_test

import (
	"context"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/local"
)

// double is the example's task. Programs register their tasks in one
// function that both the submitting side and the worker side call.
var double = executor.NewHandler("example.double", func(ctx context.Context, n int) (int, error) {
	return 2 * n, nil
}, nil)

// The whole round trip in one process: an embedded NATS server
// (natsserver), an executor that owns it, a worker connected to it in
// process, a few calls. A program that connects to a real NATS gives
// Connection{URL: ...} instead and links no server code.
func Example() {
	srv, err := natsserver.Start(natsserver.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ex, err := cluster.New(cluster.Options{Connection: cluster.Connection{Server: srv}, StopServer: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	reg, _ := executor.NewRegistry(double)
	runner := local.New(local.Options{})
	w, err := cluster.NewWorker(cluster.WorkerOptions{
		Connection: cluster.Connection{Server: ex.Server()},
		Registry:   reg,
		Executor:   runner,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for n := 1; n <= 3; n++ {
		v, err := executor.Run(context.Background(), ex, executor.Call{
			Handler: double,
			Input:   n,
			RunID:   fmt.Sprintf("example-%d", n),
			Limit:   time.Minute,
		})
		fmt.Println(v, err)
	}
	// Workers first: the executor's Shutdown stops the server they use.
	_ = w.Shutdown(context.Background())
	_ = runner.Shutdown(context.Background())
	_ = ex.Shutdown(context.Background())
	// Output:
	// 2 <nil>
	// 4 <nil>
	// 6 <nil>
}

// A worker program: Serve runs until its context ends, then drains. Here
// it serves an embedded server; a real one connects to a URL with
// Connection{URL: "nats://...", CredsFile: "..."}.
func ExampleServe() {
	srv, err := natsserver.Start(natsserver.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	reg, _ := executor.NewRegistry(double)
	runner := local.New(local.Options{})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error)
	go func() {
		served <- cluster.Serve(ctx, cluster.WorkerOptions{
			Connection: cluster.Connection{Server: srv},
			Registry:   reg,
			Executor:   runner,
		})
	}()

	ex, err := cluster.New(cluster.Options{Connection: cluster.Connection{Server: srv}})
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := executor.Run(context.Background(), ex, executor.Call{Handler: double, Input: 21, RunID: "serve-example"})
	fmt.Println(v, err)
	_ = ex.Shutdown(context.Background())

	stop() // in a program: signal.NotifyContext(ctx, syscall.SIGTERM)
	fmt.Println("served:", <-served)
	_ = runner.Shutdown(context.Background())
	// Output:
	// 42 <nil>
	// served: <nil>
}
