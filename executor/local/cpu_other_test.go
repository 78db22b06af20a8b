//go:build !unix

package local_test

// processCPU reports false where getrusage is not available: the
// benchmarks then leave out their CPU figure.
func processCPU() (int64, bool) { return 0, false }
