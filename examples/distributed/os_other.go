//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing outside Linux, which alone has a parent-death
// signal: a worker whose parent is killed runs on until it is stopped by
// hand (the example stops its workers itself when it ends).
func dieWithParent(cmd *exec.Cmd) {}
