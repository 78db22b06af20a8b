package headless

import "syscall"

// sysProcAttr puts the browser in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
