//go:build linux

package subprocess

import (
	"os"
	"syscall"

	"github.com/flowline-go/flowline/internal/procgroup"
)

// sysProcAttr makes a worker lead a process group of its own and receive
// SIGHUP when the thread that forked it exits (see the package
// documentation: Dying with the parent).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGHUP}
}

// becomeSubreaper makes this process a child subreaper, and reports
// whether it is one.
func becomeSubreaper() (bool, error) {
	if err := procgroup.SetChildSubreaper(); err != nil {
		return false, err
	}
	return true, nil
}

// watchHangup calls lost, from a goroutine of its own, once every writer
// of the pipe f is gone (the parent died), without reading f: an epoll set
// that asks for no event still reports EPOLLHUP. The goroutine ends when
// lost returns (in a worker it never does). It reports whether the watch
// is on.
func watchHangup(f *os.File, lost func()) bool {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	ev := syscall.EpollEvent{Events: 0, Fd: int32(f.Fd())}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(f.Fd()), &ev); err != nil {
		syscall.Close(epfd)
		return false
	}
	go func() {
		defer syscall.Close(epfd)
		events := make([]syscall.EpollEvent, 1)
		for {
			n, err := syscall.EpollWait(epfd, events, -1)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return // not seen to happen; the pipe's end is still seen between calls, and Pdeathsig
			}
			if n > 0 && events[0].Events&(syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				lost()
				return
			}
		}
	}()
	return true
}
