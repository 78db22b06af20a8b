package headless

import "syscall"

// sysProcAttr puts the browser in a process group of its own, which dies
// with this process.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
