//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// terminate asks a worker to drain and exit: SIGTERM.
func terminate(cmd *exec.Cmd) { _ = cmd.Process.Signal(syscall.SIGTERM) }
