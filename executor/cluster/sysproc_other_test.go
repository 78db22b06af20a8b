//go:build !linux

package cluster_test

import "syscall"

// dieWithParent returns nil outside Linux, which alone has a parent-death
// signal: the test's cleanup stops its workers itself.
func dieWithParent() *syscall.SysProcAttr { return nil }
