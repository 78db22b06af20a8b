//go:build !linux

package flow_test

import "time"

// threadCPU reports false: a thread's CPU time is read on Linux only, and
// the benchmarks then report wall time alone.
func threadCPU() (time.Duration, bool) { return 0, false }
