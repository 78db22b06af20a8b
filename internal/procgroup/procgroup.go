// Package procgroup holds the Linux process-group mechanics behind hard
// timeouts: signalling every process of a group, making this process the
// reaper of the orphans its children leave behind, reaping the members of
// one group without touching other children, waiting until nothing of a
// group is left (zombies included), and reading a process's resident
// memory. The subprocess executor uses it; anything that kills a process
// tree for real can.
//
// Two facts shape it. A process group outlives its leader: grandchildren
// keep the group alive after the worker dies, so "dead" means "kill(-pgid,
// 0) fails with ESRCH", not "Wait returned". And orphans are reparented to
// the nearest child subreaper, or to PID 1, which in some containers never
// reaps them: a killed grandchild then stays a zombie in the group forever,
// unless this process is a subreaper and reaps it.
package procgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// prctl options, from linux/prctl.h.
const (
	prSetChildSubreaper = 36
	prGetChildSubreaper = 37
)

// SetChildSubreaper makes this process a child subreaper
// (prctl(PR_SET_CHILD_SUBREAPER)): from now on, orphaned descendants are
// reparented to it instead of to PID 1. The setting is process-wide and
// lasts for the life of the process; it is inherited by no one. Calling it
// again does nothing more.
//
// The trade-off: every orphan of every descendant becomes this process's
// child, including those of child processes that other code started; the
// ones that are not reaped (Reap only reaps the groups it is given) stay
// zombies until this process exits, where init would have reaped them.
func SetChildSubreaper() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("procgroup: prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

// IsChildSubreaper reports whether this process is a child subreaper.
func IsChildSubreaper() (bool, error) {
	var v int32
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetChildSubreaper, uintptr(unsafe.Pointer(&v)), 0); errno != 0 {
		return false, fmt.Errorf("procgroup: prctl(PR_GET_CHILD_SUBREAPER): %w", errno)
	}
	return v != 0, nil
}

// Signal sends sig to every process of group pgid. A group with no process
// left gives os.ErrProcessDone, so that Signal can serve as an exec.Cmd's
// Cancel function. A pgid of 1 or less is refused: kill(-1) would signal
// every process this one may signal.
func Signal(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("procgroup: refusing to signal process group %d", pgid)
	}
	err := syscall.Kill(-pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	if err != nil {
		return fmt.Errorf("procgroup: kill(-%d, %v): %w", pgid, sig, err)
	}
	return nil
}

// Exists reports whether any process of group pgid exists, zombies
// included.
func Exists(pgid int) bool {
	if pgid <= 1 {
		return false
	}
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Reap reaps, without blocking, every child of this process in group pgid
// that has exited, and returns how many it reaped. It never waits for a
// child outside the group.
//
// Call it only once the owner of every child of the group has waited for
// it: a child started with os/exec is waited for by its Cmd.Wait, and
// reaping it here first would steal its exit status. The subprocess
// executor calls it after the worker (the group's leader) was reaped, when
// the group's remaining members are orphans this process adopted.
func Reap(pgid int) int {
	if pgid <= 1 {
		return 0
	}
	n := 0
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return n // ECHILD: no child in the group; 0: none has exited
		}
		n++
	}
}

// Gone reaps the exited children of this process in group pgid (see Reap
// for when that is allowed) and reports whether no process of the group is
// left. With foreignZombies false, zombies whose parent is another process
// do not count: they are dead, and only their parent can remove them (this
// is the case of orphans adopted by init when this process is not a child
// subreaper).
func Gone(pgid int, foreignZombies bool) bool {
	Reap(pgid)
	if !Exists(pgid) {
		return true
	}
	if foreignZombies {
		return false
	}
	members, err := Members(pgid)
	if err != nil {
		return false
	}
	self := os.Getpid()
	for _, p := range members {
		if !p.Zombie() || p.PPID == self {
			return false
		}
	}
	return true
}

// Drain waits until Gone(pgid, foreignZombies) holds or the deadline
// passes, and reports whether the group is gone. It polls, first every
// 50µs, then less often, up to every 5ms; a deadline in the past gives one
// check.
func Drain(pgid int, deadline time.Time, foreignZombies bool) bool {
	pause := 50 * time.Microsecond
	for {
		if Gone(pgid, foreignZombies) {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// Process is one entry of the process table.
type Process struct {
	PID, PPID, PGID int
	State           byte   // as in /proc/<pid>/stat: 'R', 'S', 'D', 'Z', ...
	Command         string // the executable's name, at most 15 bytes
}

// Zombie reports whether the process has exited and waits to be reaped.
func (p Process) Zombie() bool { return p.State == 'Z' || p.State == 'X' }

// Members lists the processes of group pgid by scanning /proc. Processes
// that exit during the scan may be missing; the list is a snapshot.
func Members(pgid int) ([]Process, error) {
	all, err := Processes()
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, p := range all {
		if p.PGID == pgid {
			out = append(out, p)
		}
	}
	return out, nil
}

// Processes lists every process visible in /proc.
func Processes() ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("procgroup: %w", err)
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := Stat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		out = append(out, p)
	}
	return out, nil
}

// Stat reads one process's entry from /proc/<pid>/stat.
func Stat(pid int) (Process, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Process{}, fmt.Errorf("procgroup: %w", err)
	}
	return parseStat(pid, data)
}

func parseStat(pid int, data []byte) (Process, error) {
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses,
	// so the fields start after the last ')'.
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return Process{}, fmt.Errorf("procgroup: unexpected /proc/%d/stat", pid)
	}
	fields := bytes.Fields(data[end+1:])
	if len(fields) < 3 || len(fields[0]) != 1 {
		return Process{}, fmt.Errorf("procgroup: unexpected /proc/%d/stat", pid)
	}
	ppid, err1 := strconv.Atoi(string(fields[1]))
	pgid, err2 := strconv.Atoi(string(fields[2]))
	if err1 != nil || err2 != nil {
		return Process{}, fmt.Errorf("procgroup: unexpected /proc/%d/stat", pid)
	}
	return Process{PID: pid, PPID: ppid, PGID: pgid, State: fields[0][0], Command: string(data[open+1 : end])}, nil
}

// RSS returns the resident set size of process pid in bytes, from
// /proc/<pid>/statm. It fails for a process that does not exist; a zombie
// has none.
func RSS(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, fmt.Errorf("procgroup: %w", err)
	}
	fields := bytes.Fields(data)
	if len(fields) < 2 {
		return 0, fmt.Errorf("procgroup: unexpected /proc/%d/statm", pid)
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("procgroup: unexpected /proc/%d/statm: %w", pid, err)
	}
	return pages * int64(os.Getpagesize()), nil
}
