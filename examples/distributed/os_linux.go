//go:build linux

package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd's process die with this one: Linux sends it
// SIGKILL when its parent exits (Pdeathsig).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
