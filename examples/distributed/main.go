// Command distributed runs a flow across two worker processes over NATS
// JetStream, with nothing installed: the program starts an embedded NATS
// server on loopback, starts two workers (copies of its own binary), and
// runs a flow whose mapped task's calls the workers share.
//
// With -kill, one worker is killed with SIGKILL in the middle of the run.
// The calls it held stop heartbeating; after the ack wait (2s here)
// JetStream delivers them to the other worker, and the flow still
// completes with every result recorded once. The program prints the report
// and which worker ran what, and exits non-zero if the flow did not
// complete correctly (or, with -kill, if the killed worker is still alive).
//
//	go run ./examples/distributed
//	go run ./examples/distributed -kill
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/internal/procgroup"
	"github.com/flowline-go/flowline/task"
)

// The environment of a worker process: the marker and where NATS is.
const (
	workerEnv = "FLOWLINE_DISTRIBUTED_WORKER"
	urlEnv    = "FLOWLINE_DISTRIBUTED_NATS"
)

// square is the mapped task: a tenth of a second of work per item.
var square = task.New("square", func(ctx context.Context, n int) (int, error) {
	select {
	case <-time.After(150 * time.Millisecond):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return n * n, nil
}, task.Options{Timeout: 10 * time.Second})

// sum adds the squares up; it runs on a worker too.
var sum = task.New("sum", func(ctx context.Context, squares []int) (int, error) {
	total := 0
	for _, s := range squares {
		total += s
	}
	return total, nil
}, task.Options{})

func registry() *executor.Registry {
	reg, err := task.NewRegistry(square, sum)
	if err != nil {
		panic(err)
	}
	return reg
}

// setup is shared by the submitter and the workers: a short ack wait, so
// that a dead worker's calls are taken over within seconds.
var setup = cluster.Setup{AckWait: 2 * time.Second}

func main() {
	if name := os.Getenv(workerEnv); name != "" {
		if err := serve(name, os.Getenv(urlEnv)); err != nil {
			fmt.Fprintf(os.Stderr, "worker %s: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	kill := flag.Bool("kill", false, "kill one worker with SIGKILL in the middle of the run")
	flag.Parse()
	if err := run(*kill); err != nil {
		fmt.Fprintln(os.Stderr, "distributed:", err)
		os.Exit(1)
	}
}

// serve is a worker process: it runs calls on a pool of two goroutines
// until SIGTERM.
func serve(name, url string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ex := pool.New(pool.Options{Workers: 2})
	defer ex.Shutdown(context.Background())
	return cluster.Serve(ctx, cluster.WorkerOptions{
		Connection:  cluster.Connection{URL: url},
		Setup:       setup,
		Registry:    registry(),
		Executor:    ex,
		Concurrency: 2,
		Name:        name,
	})
}

func run(kill bool) error {
	logger := hclog.New(&hclog.LoggerOptions{Name: "distributed", Level: hclog.Warn})
	// The submitter embeds the NATS server (package natsserver); the
	// workers only connect to its URL, so their code needs no server: a
	// worker program of its own would import executor/cluster alone.
	srv, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0", Logger: logger})
	if err != nil {
		return err
	}
	ex, err := cluster.New(cluster.Options{Connection: cluster.Connection{Server: srv}, StopServer: true,
		Setup: setup, Logger: logger})
	if err != nil {
		srv.Shutdown()
		return err
	}
	defer ex.Shutdown(context.Background())
	fmt.Println("embedded NATS server at", ex.ClientURL())

	workers, err := startWorkers(ex.ClientURL(), "worker-1", "worker-2")
	if err != nil {
		return err
	}
	defer workers.stop()

	items := make([]int, 16)
	for i := range items {
		items[i] = i + 1
	}
	b := flow.New("squares", flow.Options{Timeout: time.Minute})
	squares := flow.Map(b, square, flow.Const(items))
	total := flow.Add(b, sum, squares)
	f, err := b.Build()
	if err != nil {
		return err
	}

	victim := workers.cmds[0]
	var killedIt atomic.Bool
	if kill {
		// Kill worker-1 once it is busy: its calls must be redelivered.
		timer := time.AfterFunc(250*time.Millisecond, func() {
			fmt.Printf("killing worker-1 (pid %d) with SIGKILL\n", victim.Process.Pid)
			killedIt.Store(victim.Process.Kill() == nil)
		})
		defer timer.Stop()
	}
	start := time.Now()
	res, err := f.Run(context.Background(), ex, flow.RunOptions{})
	if res == nil {
		return err
	}
	fmt.Print(res.Report())
	if err != nil {
		return err
	}

	// Which worker ran what.
	ran := map[string][]string{}
	for _, tr := range res.Tasks {
		for _, a := range tr.Attempts {
			ran[a.Worker] = append(ran[a.Worker], tr.Task)
		}
	}
	names := make([]string, 0, len(ran))
	for w := range ran {
		names = append(names, w)
	}
	sort.Strings(names)
	for _, w := range names {
		fmt.Printf("%s ran %d: %s\n", w, len(ran[w]), strings.Join(ran[w], " "))
	}

	got, _ := flow.Value(res, total)
	want := 0
	for _, n := range items {
		want += n * n
	}
	fmt.Printf("sum of squares 1..%d = %d in %v\n", len(items), got, time.Since(start).Round(time.Millisecond))
	if got != want {
		return fmt.Errorf("sum %d, want %d", got, want)
	}
	if kill {
		if !killedIt.Load() {
			return errors.New("the run ended before a worker was killed")
		}
		if !exited(victim) {
			return fmt.Errorf("the killed worker %d is still alive", victim.Process.Pid)
		}
		fmt.Println("recovered: every call completed although a worker died mid-run")
	}
	return nil
}

// workerSet is the worker processes this program started.
type workerSet struct {
	cmds []*exec.Cmd
	wg   sync.WaitGroup
}

// startWorkers starts a copy of this binary per name, as a worker
// connected to url, that dies with this process.
func startWorkers(url string, names ...string) (*workerSet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ws := &workerSet{}
	for _, name := range names {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), workerEnv+"="+name, urlEnv+"="+url)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		dieWithParent(cmd) // Linux: Pdeathsig (os_*.go)
		if err := cmd.Start(); err != nil {
			ws.stop()
			return nil, err
		}
		ws.cmds = append(ws.cmds, cmd)
		ws.wg.Go(func() { _ = cmd.Wait() })
	}
	return ws, nil
}

// stop asks every worker to drain and waits for them all.
func (ws *workerSet) stop() {
	for _, cmd := range ws.cmds {
		terminate(cmd)
	}
	ws.wg.Wait()
}

// exited reports whether cmd's process is gone, allowing half a second:
// a killed worker is a zombie for a moment, until its Wait goroutine reaps
// it.
func exited(cmd *exec.Cmd) bool {
	for range 50 {
		if !procgroup.Alive(cmd.Process.Pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}
