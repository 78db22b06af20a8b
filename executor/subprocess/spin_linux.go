//go:build linux

package subprocess

import (
	"syscall"
	"unsafe"
)

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

// canBlock says that waitReadable works here.
const canBlock = true

// waitReadable sleeps in ppoll until fd is readable or its writers are
// gone.
func waitReadable(fd int) error {
	pfd := struct {
		fd             int32
		events, revent int16
	}{fd: int32(fd), events: 0x1} // POLLIN
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, 0, 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}
