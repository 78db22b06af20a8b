//go:build windows

package main

import "os/exec"

// terminate stops a worker. Windows cannot send another process SIGTERM:
// the worker is killed, and the calls it held are redelivered.
func terminate(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
