//go:build !linux && !darwin

package headless

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

func supported() error {
	return fmt.Errorf("headless: on %s os/exec cannot pass the DevTools pipe's file descriptors: %w", runtime.GOOS, errors.ErrUnsupported)
}

func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(int) {}

func drainGroup(int) error { return nil }
