//go:build linux || darwin

package subprocess

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/flowline-go/flowline/internal/procgroup"
)

// group is the process tree of one worker: on Linux and macOS the process
// group it leads (Setpgid), whose id is the worker's pid.
type group struct {
	pgid int
}

// prepare gives cmd the protocol pipes (the worker's fd 3, fd 4 and the
// direct pipe, fd 5) and the attributes that make the worker lead a group
// of its own.
func (g *group) prepare(cmd *exec.Cmd, calls, results, direct *os.File) error {
	cmd.ExtraFiles = []*os.File{calls, results, direct}
	cmd.SysProcAttr = sysProcAttr()
	return nil
}

// attach makes g the group of the worker cmd just started.
func (g *group) attach(cmd *exec.Cmd) error {
	g.pgid = cmd.Process.Pid
	return nil
}

// term asks every process of the group to stop: SIGTERM. A group with no
// process left gives os.ErrProcessDone, as exec.Cmd.Cancel expects.
func (g *group) term() error { return procgroup.Signal(g.pgid, syscall.SIGTERM) }

// kill kills every process of the group: SIGKILL.
func (g *group) kill() error { return procgroup.Signal(g.pgid, syscall.SIGKILL) }

// drain reaps what of the group this process may reap and waits until
// nothing of it is left or the deadline passes (see procgroup.Drain).
func (g *group) drain(deadline time.Time, foreignZombies bool) bool {
	return procgroup.Drain(g.pgid, deadline, foreignZombies)
}

// survivors describes what is left of the group, for a log line.
func (g *group) survivors() string {
	members, err := procgroup.Members(g.pgid)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(members)
}

// release frees what the group holds once it is gone: nothing on Unix.
func (g *group) release() {}

// rss returns the worker's resident set size.
func rss(pid int) (int64, error) { return procgroup.RSS(pid) }

// directPipe says that workers have a direct pipe here (fd 5).
const directPipe = true

// workerFiles returns the worker's ends of the protocol pipes, fd 3, fd 4
// and the direct pipe, fd 5, and its stop requests.
func workerFiles() (calls, results, direct *os.File, stop stopper, err error) {
	for _, fd := range []int{3, 4, 5} {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return nil, nil, nil, stopper{}, fmt.Errorf("started as a worker without its protocol pipe on fd %d: %w", fd, err)
		}
		// Not inherited by the processes tasks start; pollable by Go.
		syscall.CloseOnExec(fd)
		_ = syscall.SetNonblock(fd, true)
	}
	return os.NewFile(3, "flowline-calls"), os.NewFile(4, "flowline-results"), os.NewFile(5, "flowline-direct"), stopper{}, nil
}

// ownGroup returns the worker's process group id.
func ownGroup() int { return syscall.Getpgrp() }

// stopper is the worker's side of its stop requests: on Unix, signals.
type stopper struct{}

// watch delivers the worker's stop requests on c: SIGTERM from the parent
// and SIGHUP, the parent-death signal (Linux).
func (stopper) watch(c chan<- os.Signal) { signal.Notify(c, syscall.SIGTERM, syscall.SIGHUP) }

// rewatch turns the stop requests back on after a task that ignored
// SIGTERM or SIGHUP (signal.Ignore), which turned off the worker's handler
// too.
func (s stopper) rewatch(c chan<- os.Signal) {
	if signal.Ignored(syscall.SIGTERM) || signal.Ignored(syscall.SIGHUP) {
		s.watch(c)
	}
}

// killOwnGroup kills the worker's whole group, itself included, but never
// the group of a parent that did not give the worker its own.
func killOwnGroup(pid, pgid int) {
	if pgid == pid {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}
