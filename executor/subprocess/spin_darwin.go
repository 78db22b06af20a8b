//go:build darwin

package subprocess

// osYield does nothing on macOS, which has no sched_yield in package
// syscall; runtime.Gosched alone yields between polls.
func osYield() {}

// preempted returns 0: macOS polls as configured, whatever the load.
func preempted() int64 { return 0 }
