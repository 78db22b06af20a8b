//go:build unix

package executortest

import (
	"errors"
	"syscall"
)

// alive reports whether any process of the group (id < 0: group -id) or
// the process (id > 0) exists, zombies included.
func alive(id int) bool {
	err := syscall.Kill(id, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ownGroup returns this process's group id.
func ownGroup() int { return syscall.Getpgrp() }

// groupOf returns process pid's group id.
func groupOf(pid int) (int, error) { return syscall.Getpgid(pid) }
