//go:build linux

package subprocess

import "syscall"

// osYield gives this thread's CPU to another thread that waits for it, if
// any (sched_yield).
func osYield() { _, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
