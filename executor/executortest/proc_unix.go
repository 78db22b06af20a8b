//go:build unix

package executortest

import (
	"context"
	"errors"
	"os/exec"
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

// echoCommand returns a command that prints text and a newline.
func echoCommand(ctx context.Context, text string) *exec.Cmd {
	return exec.CommandContext(ctx, "sh", "-c", `echo "$0"`, text)
}
