package main

import (
	"runtime"
	"runtime/metrics"
	"slices"
	"syscall"
	"time"
)

// result is one run of one contender.
type result struct {
	nsPerTask     float64
	cpuPerTask    float64 // user+system CPU time of the process, ns per task
	allocsPerTask float64
	peakMiB       float64       // heap objects above the level before the run
	peakG         uint64        // goroutines above the count before the run
	p50, p99, max time.Duration // lateness, for latency tables
}

var memMetrics = []string{
	"/memory/classes/heap/objects:bytes", // live and not yet swept heap objects
	"/sched/goroutines:goroutines",       // goroutines alive
	"/gc/heap/allocs:objects",            // cumulative heap allocations
}

// readMem returns the heap in use, the goroutine count and the number of
// heap allocations so far. Stack memory is left out: the runtime keeps
// stack spans reserved after a run, so the next contender would look
// cheaper than it is; the peak goroutine count says it instead.
func readMem(s []metrics.Sample) (bytes, goroutines, allocs uint64) {
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
}

// measure runs f once, for n tasks, and reports time, allocations and peak
// memory per task; f returns lateness samples for latency tables.
func measure(n int, f func() []time.Duration) result {
	runtime.GC()
	samples := make([]metrics.Sample, len(memMetrics))
	for i, name := range memMetrics {
		samples[i].Name = name
	}
	base, baseG, allocs0 := readMem(samples)

	stop := make(chan struct{})
	type peaks struct{ bytes, g uint64 }
	peakc := make(chan peaks)
	go func() {
		s := make([]metrics.Sample, len(memMetrics))
		copy(s, samples)
		p := peaks{base, baseG}
		look := func() {
			b, g, _ := readMem(s)
			p.bytes, p.g = max(p.bytes, b), max(p.g, g)
		}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				look()
			case <-stop:
				look()
				peakc <- p
				return
			}
		}
	}()

	cpu0 := cpuTime()
	start := time.Now()
	late := f()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	close(stop)
	peak := <-peakc
	_, _, allocs1 := readMem(samples)

	r := result{
		nsPerTask:     float64(elapsed.Nanoseconds()) / float64(n),
		cpuPerTask:    float64(cpu.Nanoseconds()) / float64(n),
		allocsPerTask: float64(allocs1-allocs0) / float64(n),
		peakMiB:       float64(peak.bytes-base) / (1 << 20),
		peakG:         peak.g - baseG - 1, // the sampler itself
	}
	if len(late) > 0 {
		slices.Sort(late)
		r.p50 = late[len(late)/2]
		r.p99 = late[len(late)*99/100]
		r.max = late[len(late)-1]
	}
	return r
}

// cpuTime returns the user and system CPU time the process has used: less
// sensitive than wall time to other processes on a loaded machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
