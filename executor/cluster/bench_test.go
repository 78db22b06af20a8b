package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
)

// noop is the benchmarks' task: it does nothing, so what is measured is
// the executor.
var noop = executor.NewHandler("bench.noop", func(ctx context.Context, n int) (int, error) { return n, nil }, nil)

var benchRun atomic.Int64

// benchCluster starts an executor with its own embedded server and an
// in-process worker of the given concurrency on a pool of as many workers.
func benchCluster(b *testing.B, slots int, memory bool) executor.Executor {
	b.Helper()
	return benchClusterSetup(b, slots, cluster.Setup{Memory: memory})
}

// benchClusterSetup is benchCluster with the given Setup.
func benchClusterSetup(b *testing.B, slots int, setup cluster.Setup) executor.Executor {
	b.Helper()
	srv, err := natsserver.Start(natsserver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ex, err := cluster.New(cluster.Options{Setup: setup, MaxPending: 1 << 16,
		Connection: cluster.Connection{Server: srv}, StopServer: true})
	if err != nil {
		b.Fatal(err)
	}
	reg, err := executor.NewRegistry(noop)
	if err != nil {
		b.Fatal(err)
	}
	runner := pool.New(pool.Options{Workers: slots})
	w, err := cluster.NewWorker(cluster.WorkerOptions{
		Connection: cluster.Connection{Server: ex.Server()}, Setup: setup,
		Registry: reg, Executor: runner, Concurrency: slots,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx := context.Background()
		_ = w.Shutdown(ctx)
		_ = runner.Shutdown(ctx)
		_ = ex.Shutdown(ctx)
	})
	return ex
}

// report adds tasks per second and latency percentiles to b's results.
func report(b *testing.B, elapsed time.Duration, lat []time.Duration) {
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "tasks/s")
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op") // per-op time is tasks/s's inverse here
}

// sequential runs b.N calls one after the other: the latency of one call
// on an idle executor.
func sequential(b *testing.B, ex executor.Executor) {
	run := "seq-" + strconv.FormatInt(benchRun.Add(1), 10) + "-"
	lat := make([]time.Duration, b.N)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		t0 := time.Now()
		if _, err := executor.Run(ctx, ex, executor.Call{Handler: noop, Input: i, RunID: run + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	report(b, elapsed, lat)
}

// pipelined keeps up to window calls in flight from one submitting
// goroutine, as a flow runner does: throughput, and the latency of each
// call from Submit to its result under that load.
func pipelined(b *testing.B, ex executor.Executor, window int) {
	run := "pipe-" + strconv.FormatInt(benchRun.Add(1), 10) + "-"
	lat := make([]time.Duration, b.N)
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	var failed atomic.Int64
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		sem <- struct{}{}
		wg.Add(1)
		t0 := time.Now()
		f, err := ex.Submit(ctx, executor.Call{Handler: noop, Input: i, RunID: run + strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
		f.OnDone(func() {
			lat[i] = time.Since(t0)
			if _, err, _ := f.Result(); err != nil {
				failed.Add(1)
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d calls failed", n)
	}
	report(b, elapsed, lat)
}

// BenchmarkNoop measures no-op tasks end to end, submit to result: the
// in-process local and pool executors against the cluster executor on an
// embedded server with an in-process worker running calls on a pool. Run
// with -benchtime=20000x or more for stable percentiles.
func BenchmarkNoop(b *testing.B) {
	b.Run("local/sequential", func(b *testing.B) {
		ex := local.New(local.Options{})
		defer ex.Shutdown(context.Background())
		sequential(b, ex)
	})
	b.Run("pool/sequential", func(b *testing.B) {
		ex := pool.New(pool.Options{Workers: 2})
		defer ex.Shutdown(context.Background())
		sequential(b, ex)
	})
	b.Run("pool/pipelined/window=256", func(b *testing.B) {
		ex := pool.New(pool.Options{Workers: 2})
		defer ex.Shutdown(context.Background())
		pipelined(b, ex, 256)
	})
	b.Run("cluster/sequential", func(b *testing.B) {
		sequential(b, benchCluster(b, 4, false))
	})
	for _, slots := range []int{16, 64} {
		for _, window := range []int{8, 32, 256} {
			b.Run(fmt.Sprintf("cluster/pipelined/slots=%d/window=%d", slots, window), func(b *testing.B) {
				pipelined(b, benchCluster(b, slots, false), window)
			})
		}
	}
	b.Run("cluster-memory/pipelined/slots=16/window=256", func(b *testing.B) {
		pipelined(b, benchCluster(b, 16, true), 256)
	})
}
