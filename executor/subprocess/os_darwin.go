//go:build darwin

package subprocess

import (
	"os"
	"syscall"
)

// sysProcAttr makes a worker lead a process group of its own. macOS has no
// parent-death signal: a worker notices its parent's death by the end of
// its protocol pipe, and kills its group then.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// becomeSubreaper does nothing on macOS, which has no child subreapers:
// orphans go to launchd, which reaps them, so a group whose processes are
// all dead and owned by launchd counts as stopped.
func becomeSubreaper() (bool, error) { return false, nil }

// watchHangup reports false: on macOS the worker reads its calls pipe on
// a goroutine of its own while a call runs, to see the parent's death (see
// os_linux.go).
func watchHangup(f *os.File, lost func()) bool { return false }
