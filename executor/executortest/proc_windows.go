//go:build windows

package executortest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"github.com/flowline-go/flowline/internal/procgroup"
)

// Windows has no process groups: the checks of a hard executor's process
// tree (Grandchild, checkHardKill) are written for Unix. A hard executor
// on Windows fails them through groupOf's error, never by a check that
// passes without looking.

// alive reports whether process id exists; a group (id < 0) does not
// exist on Windows, and asking is a bug in the suite.
func alive(id int) bool {
	if id < 0 {
		panic("executortest: no process groups on windows")
	}
	return procgroup.Alive(id)
}

// ownGroup returns -1: no process has a group on Windows.
func ownGroup() int { return -1 }

// groupOf fails: Windows has no process groups.
func groupOf(pid int) (int, error) {
	return 0, fmt.Errorf("executortest: process group of %d: %w", pid, errors.ErrUnsupported)
}

// echoCommand returns a command that prints text and a newline: cmd's
// echo, with the command line given whole so that no quotes are added
// (text must hold none of cmd's special characters; the suite's does
// not).
func echoCommand(ctx context.Context, text string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "cmd")
	cmd.SysProcAttr = &syscall.SysProcAttr{CmdLine: "cmd /c echo " + text}
	return cmd
}
