//go:build linux || darwin

package procgroup

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

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

// Alive reports whether process pid exists, zombies included.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
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
	State           byte   // as in Linux's /proc/<pid>/stat: 'R', 'S', 'D', 'Z', ... (macOS: 'R', 'S', 'T', 'Z')
	Command         string // the executable's name, at most 15 bytes (16 on macOS)
}

// Zombie reports whether the process has exited and waits to be reaped.
func (p Process) Zombie() bool { return p.State == 'Z' || p.State == 'X' }

// Members lists the processes of group pgid from Processes. Processes
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
