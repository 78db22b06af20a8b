//go:build linux

package subprocess_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

// BenchmarkVsFloor runs the executor and its floors in alternating
// rounds, so that every ratio compares figures taken at the same moment:
// on a shared machine the load moves more between two benchmarks than
// between two rounds. Run it once (-benchtime=1x); it reports medians over
// the rounds, and the median of the per-round ratios.
//
//   - round-trip: one 64 B call (bytesTask) on a warm worker, with and
//     without Options.Spin, against the two-pipe floor; p50 per round, CPU
//     per call of this process and the worker.
//   - throughput: 8 goroutines on 2 workers against 2 children served by
//     2 goroutines, 64 B calls; calls per second per round.
//   - hard-kill: a call that overruns its limit, no grace period, from
//     the deadline to the caller's answer with the group reaped, against
//     a timer, SIGKILL to a warm child's group, Wait and the group
//     confirmed gone.
func BenchmarkVsFloor(b *testing.B) {
	b.Run("round-trip", func(b *testing.B) {
		const rounds, calls = 9, 3000
		type side struct {
			name       string
			rt         func() error
			wkr        func() time.Duration
			p50s       []float64
			pcpu, wcpu time.Duration // over every round: the clock of another process ticks in 10ms
		}
		ctx := context.Background()
		call := executor.Call{Handler: bytesTask, Input: bytesInput}
		var sides []*side
		for _, spin := range []time.Duration{0, -1} {
			ex := mustNew(b, subprocess.Options{Workers: 1, Spin: spin})
			defer shutdown(b, ex)
			f, err := ex.Submit(ctx, call)
			if err == nil {
				_, err = f.Wait(ctx)
			}
			if err != nil {
				b.Fatal(err)
			}
			pid := workerPID(b, f)
			name := "spin"
			if spin < 0 {
				name = "no-spin"
			}
			sides = append(sides, &side{name: name, rt: func() error {
				v, err := executor.Run(ctx, ex, call)
				if err == nil && !isBytes(v) {
					b.Fatalf("got %v", v)
				}
				return err
			}, wkr: func() time.Duration { return procCPU(pid) }})
		}
		c := startFloorChild(b)
		defer c.stop(b)
		sides = append(sides, &side{name: "floor", rt: c.roundTrip, wkr: func() time.Duration { return procCPU(c.cmd.Process.Pid) }})
		for b.Loop() {
			for range rounds {
				for _, s := range sides {
					lat := make([]time.Duration, 0, calls)
					p0, w0 := selfCPU(), s.wkr()
					for range calls {
						start := time.Now()
						if err := s.rt(); err != nil {
							b.Fatal(err)
						}
						lat = append(lat, time.Since(start))
					}
					s.pcpu += selfCPU() - p0
					s.wcpu += s.wkr() - w0
					slices.Sort(lat)
					s.p50s = append(s.p50s, us(lat[len(lat)/2]))
				}
			}
		}
		floor := sides[len(sides)-1]
		for _, s := range sides {
			b.ReportMetric(median(s.p50s), s.name+"-p50-µs")
			b.ReportMetric(us(s.pcpu)/(rounds*calls), s.name+"-parent-cpu-µs/op")
			b.ReportMetric(us(s.wcpu)/(rounds*calls), s.name+"-worker-cpu-µs/op")
			if s != floor {
				b.ReportMetric(medianRatio(s.p50s, floor.p50s), s.name+"/floor")
			}
		}
	})
	b.Run("throughput", func(b *testing.B) {
		const rounds, calls = 9, 6000
		ctx := context.Background()
		call := executor.Call{Handler: bytesTask, Input: bytesInput}
		ex := mustNew(b, subprocess.Options{Workers: 2})
		defer shutdown(b, ex)
		cs := []*floorChild{startFloorChild(b), startFloorChild(b)}
		defer func() {
			for _, c := range cs {
				c.stop(b)
			}
		}()
		run := func(goroutines int, each func(i int) error) float64 {
			var wg sync.WaitGroup
			start := time.Now()
			for g := range goroutines {
				wg.Go(func() {
					for range calls / goroutines {
						if err := each(g); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			return float64(calls) / time.Since(start).Seconds()
		}
		exec := func(int) error { _, err := executor.Run(ctx, ex, call); return err }
		floor := func(g int) error { return cs[g].roundTrip() }
		run(8, exec) // both workers warm
		var ours, theirs []float64
		for b.Loop() {
			for range rounds {
				ours = append(ours, run(8, exec))
				theirs = append(theirs, run(2, floor))
			}
		}
		b.ReportMetric(median(ours), "calls/s")
		b.ReportMetric(median(theirs), "floor-calls/s")
		b.ReportMetric(medianRatio(ours, theirs), "calls/floor")
	})
	b.Run("hard-kill", func(b *testing.B) {
		const rounds, limit = 41, 20 * time.Millisecond
		ctx := context.Background()
		ex := mustNew(b, subprocess.Options{Workers: 1})
		defer shutdown(b, ex)
		warm := executor.Call{Handler: executortest.Echo, Input: executortest.Args{}}
		call := executor.Call{Handler: executortest.Sleep, Input: executortest.Args{Sleep: time.Hour}, Limit: limit}
		var ours, theirs []float64
		for b.Loop() {
			for range rounds {
				if _, err := executor.Run(ctx, ex, warm); err != nil { // a warm worker waits
					b.Fatal(err)
				}
				start := time.Now()
				_, err := executor.Run(ctx, ex, call)
				ours = append(ours, ms(time.Since(start)-limit))
				var te *executor.TimeoutError
				if !errorsAs(err, &te) || !te.Stopped {
					b.Fatalf("got %v", err)
				}
				theirs = append(theirs, ms(killOnce(b, limit)))
			}
		}
		b.ReportMetric(median(ours), "answered-p50-ms")
		b.ReportMetric(median(theirs), "floor-p50-ms")
		b.ReportMetric(median(ours)/median(theirs), "answered/floor")
	})
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// medianRatio is the median of a[i]/b[i].
func medianRatio(a, b []float64) float64 {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] / b[i]
	}
	return median(r)
}
