//go:build linux

package subprocess

import (
	"syscall"

	"github.com/flowline-go/flowline/internal/procgroup"
)

// sysProcAttr makes a worker lead a process group of its own and receive
// SIGHUP when the thread that forked it exits (see the package
// documentation: Dying with the parent).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGHUP}
}

// becomeSubreaper makes this process a child subreaper, and reports
// whether it is one.
func becomeSubreaper() (bool, error) {
	if err := procgroup.SetChildSubreaper(); err != nil {
		return false, err
	}
	return true, nil
}
