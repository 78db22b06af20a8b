//go:build linux

package subprocess_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

// reportPercentiles adds p50 and p99 of d, in microseconds, to b's
// results.
func reportPercentiles(b *testing.B, d []time.Duration, unit string) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	scale := float64(time.Microsecond)
	if unit == "ms" {
		scale = float64(time.Millisecond)
	}
	b.ReportMetric(float64(d[len(d)/2])/scale, "p50-"+unit)
	b.ReportMetric(float64(d[len(d)*99/100])/scale, "p99-"+unit)
}

func shutdown(b *testing.B, ex *subprocess.Executor) {
	b.Helper()
	require.NoError(b, ex.Shutdown(context.Background()))
}

// BenchmarkRoundTrip compares one small call (the suite's Echo task, a
// JSON struct each way) run in process, in a warm worker, and in a fresh
// process per call, with the floor of a warm worker: a warm child that
// echoes 64 B length-prefixed frames over two pipes (two-pipe-floor).
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	args := executortest.Args{N: 21, Text: "hello"}
	b.Run("in-process", func(b *testing.B) {
		for b.Loop() {
			if _, err := executortest.Echo.Run(ctx, args); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct {
		name  string
		call  executor.Call
		check func(any) bool
		spin  time.Duration
	}{
		{"warm-worker", executor.Call{Handler: executortest.Echo, Input: args}, isEcho, 0},
		{"warm-worker-with-limit", executor.Call{Handler: executortest.Echo, Input: args, Limit: time.Minute}, isEcho, 0},
		{"warm-worker-no-spin", executor.Call{Handler: executortest.Echo, Input: args}, isEcho, -1},
		{"warm-worker-64B", executor.Call{Handler: bytesTask, Input: bytesInput}, isBytes, 0},
		{"warm-worker-64B-no-spin", executor.Call{Handler: bytesTask, Input: bytesInput}, isBytes, -1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ex := mustNew(b, subprocess.Options{Workers: 1, Spin: tc.spin})
			defer shutdown(b, ex)
			f, err := ex.Submit(ctx, tc.call) // start the worker
			if err == nil {
				_, err = f.Wait(ctx)
			}
			if err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, 1<<16)
			cpu := startCPU(workerPID(b, f))
			for b.Loop() {
				start := time.Now()
				v, err := executor.Run(ctx, ex, tc.call)
				if err != nil || !tc.check(v) {
					b.Fatal(v, err)
				}
				lat = append(lat, time.Since(start))
			}
			cpu.report(b, b.N)
			reportPercentiles(b, lat, "µs")
		})
	}
	b.Run("two-pipe-floor", floorRoundTrip)
	b.Run("fresh-process", func(b *testing.B) {
		input, err := json.Marshal(args)
		require.NoError(b, err)
		env := append(os.Environ(), helperEnv+"=fresh-echo")
		for b.Loop() {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = env
			cmd.Stdin = bytes.NewReader(append(input, '\n'))
			out, err := cmd.Output()
			if err != nil {
				b.Fatal(err)
			}
			var r executortest.Reply
			if err := json.Unmarshal(out, &r); err != nil || r.N != 42 {
				b.Fatalf("got %q, %v", out, err)
			}
		}
	})
}

// isEcho and isBytes check the results of the benchmarks' calls.
func isEcho(v any) bool  { r, ok := v.(executortest.Reply); return ok && r.N == 42 }
func isBytes(v any) bool { b, ok := v.([]byte); return ok && bytes.Equal(b, bytesInput) }

// BenchmarkThroughput runs small calls from 8 goroutines on 2 workers and
// reports calls per second, with the floor: two warm children echoing
// 64 B frames over two pipes each, each served by a goroutine of its own.
func BenchmarkThroughput(b *testing.B) {
	b.Run("2-workers", func(b *testing.B) {
		throughput(b, executor.Call{Handler: executortest.Echo, Input: executortest.Args{N: 1}}, 0)
	})
	b.Run("2-workers-64B", func(b *testing.B) { throughput(b, executor.Call{Handler: bytesTask, Input: bytesInput}, 0) })
	b.Run("2-workers-64B-no-spin", func(b *testing.B) {
		throughput(b, executor.Call{Handler: bytesTask, Input: bytesInput}, -1)
	})
	b.Run("two-pipe-floor", floorThroughput)
}

func throughput(b *testing.B, call executor.Call, spin time.Duration) {
	ctx := context.Background()
	ex := mustNew(b, subprocess.Options{Workers: 2, Spin: spin})
	defer shutdown(b, ex)
	for range 2 {
		if _, err := executor.Run(ctx, ex, call); err != nil {
			b.Fatal(err)
		}
	}
	b.SetParallelism(4)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := executor.Run(ctx, ex, call); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// BenchmarkDeadlineToDeath measures, for a call that overruns its limit,
// the time from the deadline to the moment the worker's process group is
// confirmed dead and the caller has its TimeoutError (TimeoutError.Elapsed
// minus the limit; answered-p50-ms is the same seen by the caller, from
// Submit to the end of Wait, minus the limit). "hard-kill": no grace period (the default), the
// group gets SIGKILL at the deadline; "floor" is the same with no
// executor: a timer, SIGKILL to a warm child's group, Wait, and the group
// confirmed gone. "term-honoured": the task returns when its context
// ends and the worker exits at SIGTERM. "term-ignored": the task ignores
// SIGTERM, so SIGKILL comes after the grace period (100ms here); the
// metric is then reported past the grace period too.
func BenchmarkDeadlineToDeath(b *testing.B) {
	const limit, grace = 20 * time.Millisecond, 100 * time.Millisecond
	b.Run("floor", func(b *testing.B) { floorKill(b, limit) })
	for _, tc := range []struct {
		name  string
		grace time.Duration
		args  executortest.Args
	}{
		{"hard-kill", 0, executortest.Args{Sleep: time.Hour}},
		{"term-honoured", grace, executortest.Args{Sleep: time.Hour, Cooperative: true}},
		{"term-ignored", grace, executortest.Args{Sleep: time.Hour, IgnoreTerm: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			ex := mustNew(b, subprocess.Options{Workers: 1, Grace: tc.grace})
			defer shutdown(b, ex)
			warm := executor.Call{Handler: executortest.Echo, Input: executortest.Args{}}
			call := executor.Call{Handler: executortest.Sleep, Input: tc.args, Limit: limit}
			var after, answered []time.Duration
			for b.Loop() {
				b.StopTimer()
				if _, err := executor.Run(ctx, ex, warm); err != nil { // a warm worker waits
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				_, err := executor.Run(ctx, ex, call)
				answered = append(answered, time.Since(start)-limit)
				var te *executor.TimeoutError
				if !errorsAs(err, &te) || !te.Stopped {
					b.Fatalf("got %v", err)
				}
				after = append(after, te.Elapsed-limit)
			}
			reportPercentiles(b, after, "ms")
			slices.Sort(answered)
			b.ReportMetric(float64(answered[len(answered)/2])/float64(time.Millisecond), "answered-p50-ms")
			if tc.args.IgnoreTerm {
				for i := range after {
					after[i] -= grace
				}
				slices.Sort(after)
				b.ReportMetric(float64(after[len(after)*99/100])/float64(time.Millisecond), "p99-past-grace-ms")
			}
		})
	}
}

// mustNew returns a new Executor, or fails the benchmark.
func mustNew(b *testing.B, opts subprocess.Options) *subprocess.Executor {
	b.Helper()
	ex, err := subprocess.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	return ex
}
