package main

import (
	"runtime"
	"runtime/metrics"
	"slices"
	"time"
)

// result is one run of one contender.
type result struct {
	nsPerTask     float64
	allocsPerTask float64
	peakMiB       float64
	p50, p99, max time.Duration // lateness, for latency tables
}

var memMetrics = []string{
	"/memory/classes/heap/objects:bytes", // live and not yet swept heap objects
	"/memory/classes/heap/stacks:bytes",  // goroutine stacks
	"/gc/heap/allocs:objects",            // cumulative heap allocations
}

func readMem(s []metrics.Sample) (bytes, allocs uint64) {
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64(), s[2].Value.Uint64()
}

// measure runs f once, for n tasks, and reports time, allocations and peak
// memory per task; f returns lateness samples for latency tables.
func measure(n int, f func() []time.Duration) result {
	runtime.GC()
	samples := make([]metrics.Sample, len(memMetrics))
	for i, name := range memMetrics {
		samples[i].Name = name
	}
	base, allocs0 := readMem(samples)

	stop := make(chan struct{})
	peakc := make(chan uint64)
	go func() {
		s := make([]metrics.Sample, len(memMetrics))
		copy(s, samples)
		peak := base
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if b, _ := readMem(s); b > peak {
					peak = b
				}
			case <-stop:
				if b, _ := readMem(s); b > peak {
					peak = b
				}
				peakc <- peak
				return
			}
		}
	}()

	start := time.Now()
	late := f()
	elapsed := time.Since(start)
	close(stop)
	peak := <-peakc
	_, allocs1 := readMem(samples)

	r := result{
		nsPerTask:     float64(elapsed.Nanoseconds()) / float64(n),
		allocsPerTask: float64(allocs1-allocs0) / float64(n),
		peakMiB:       float64(peak-base) / (1 << 20),
	}
	if len(late) > 0 {
		slices.Sort(late)
		r.p50 = late[len(late)/2]
		r.p99 = late[len(late)*99/100]
		r.max = late[len(late)-1]
	}
	return r
}
