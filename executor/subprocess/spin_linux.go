//go:build linux

package subprocess

import "syscall"

// osYield gives this thread's CPU to another thread that waits for it, if
// any (sched_yield).
func osYield() { _, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }

// preempted returns how many times this process's threads were switched
// out while they could have run on (involuntary context switches,
// sched_yield's that gave the CPU away among them).
func preempted() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Nivcsw
}
