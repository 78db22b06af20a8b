//go:build darwin

package subprocess

import "errors"

// osYield does nothing on macOS, which has no sched_yield in package
// syscall; runtime.Gosched alone yields between polls.
func osYield() {}

// preempted returns 0: macOS polls as configured, whatever the load.
func preempted() int64 { return 0 }

// canBlock says that waitReadable does not work here.
const canBlock = false

// waitReadable is not used on macOS.
func waitReadable(fd int) error { return errors.ErrUnsupported }
