//go:build !unix

package cluster_test

// cpuSeconds returns -1: the process's CPU time is read on Unix only,
// and the benchmarks then leave their CPU metrics out.
func cpuSeconds() float64 { return -1 }
