//go:build darwin

package procgroup

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// SetChildSubreaper fails on macOS, which has no child subreapers: orphans
// go to launchd, which reaps them. The error wraps errors.ErrUnsupported.
func SetChildSubreaper() error {
	return fmt.Errorf("procgroup: child subreaper on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// IsChildSubreaper reports false: macOS has no child subreapers.
func IsChildSubreaper() (bool, error) { return false, nil }

// Processes lists every process this one can see, from the kernel's
// process table (sysctl kern.proc.all), zombies included.
func Processes() ([]Process, error) {
	kps, err := unix.SysctlKinfoProcSlice("kern.proc.all")
	if err != nil {
		return nil, fmt.Errorf("procgroup: sysctl kern.proc.all: %w", err)
	}
	out := make([]Process, 0, len(kps))
	for i := range kps {
		out = append(out, fromKinfo(&kps[i]))
	}
	return out, nil
}

// Stat reads one process's entry from the kernel's process table (sysctl
// kern.proc.pid). It fails for a process that does not exist.
func Stat(pid int) (Process, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		return Process{}, fmt.Errorf("procgroup: sysctl kern.proc.pid %d: %w", pid, err)
	}
	if kp.Proc.P_pid != int32(pid) { // no such process: the kernel fills nothing
		return Process{}, fmt.Errorf("procgroup: no process %d", pid)
	}
	return fromKinfo(kp), nil
}

// Process states, from sys/proc.h.
const (
	sidl   = 1
	srun   = 2
	ssleep = 3
	sstop  = 4
	szomb  = 5
)

func fromKinfo(kp *unix.KinfoProc) Process {
	state := byte('?')
	switch kp.Proc.P_stat {
	case sidl, srun:
		state = 'R'
	case ssleep:
		state = 'S'
	case sstop:
		state = 'T'
	case szomb:
		state = 'Z'
	}
	comm := kp.Proc.P_comm[:]
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	return Process{
		PID:     int(kp.Proc.P_pid),
		PPID:    int(kp.Eproc.Ppid),
		PGID:    int(kp.Eproc.Pgid),
		State:   state,
		Command: string(comm),
	}
}

// RSS fails on macOS: another process's resident memory is only available
// through libproc, which this package does not link. The error wraps
// errors.ErrUnsupported.
func RSS(pid int) (int64, error) {
	return 0, fmt.Errorf("procgroup: resident memory of process %d on %s: %w", pid, runtime.GOOS, errors.ErrUnsupported)
}
