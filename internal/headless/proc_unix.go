//go:build linux || darwin

package headless

import (
	"fmt"
	"syscall"
	"time"

	"github.com/flowline-go/flowline/internal/procgroup"
)

func supported() error { return nil }

func killGroup(pgid int) { _ = procgroup.Signal(pgid, syscall.SIGKILL) }

// drainGroup waits for the browser's group to be gone, killing what is
// left of it after a while (renderers that outlive the browser).
func drainGroup(pgid int) error {
	if procgroup.Drain(pgid, time.Now().Add(3*time.Second), false) {
		return nil
	}
	killGroup(pgid)
	if procgroup.Drain(pgid, time.Now().Add(5*time.Second), false) {
		return nil
	}
	left, _ := procgroup.Members(pgid)
	return fmt.Errorf("headless: processes of the browser's group %d are still there: %v", pgid, left)
}
