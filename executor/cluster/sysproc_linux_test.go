//go:build linux

package cluster_test

import "syscall"

// dieWithParent makes a worker process die with the test binary: Linux
// sends it SIGKILL when its parent exits (Pdeathsig).
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
