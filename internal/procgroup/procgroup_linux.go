//go:build linux

package procgroup

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// prctl options, from linux/prctl.h.
const (
	prSetChildSubreaper = 36
	prGetChildSubreaper = 37
)

// SetChildSubreaper makes this process a child subreaper
// (prctl(PR_SET_CHILD_SUBREAPER)): from now on, orphaned descendants are
// reparented to it instead of to PID 1. The setting is process-wide and
// lasts for the life of the process; it is inherited by no one. Calling it
// again does nothing more.
//
// The trade-off: every orphan of every descendant becomes this process's
// child, including those of child processes that other code started; the
// ones that are not reaped (Reap only reaps the groups it is given) stay
// zombies until this process exits, where init would have reaped them.
func SetChildSubreaper() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("procgroup: prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

// IsChildSubreaper reports whether this process is a child subreaper.
func IsChildSubreaper() (bool, error) {
	var v int32
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetChildSubreaper, uintptr(unsafe.Pointer(&v)), 0); errno != 0 {
		return false, fmt.Errorf("procgroup: prctl(PR_GET_CHILD_SUBREAPER): %w", errno)
	}
	return v != 0, nil
}

// Processes lists every process visible in /proc.
func Processes() ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("procgroup: %w", err)
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := Stat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		out = append(out, p)
	}
	return out, nil
}

// Stat reads one process's entry from /proc/<pid>/stat.
func Stat(pid int) (Process, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Process{}, fmt.Errorf("procgroup: %w", err)
	}
	return parseStat(pid, data)
}

func parseStat(pid int, data []byte) (Process, error) {
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses,
	// so the fields start after the last ')'.
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return Process{}, fmt.Errorf("procgroup: unexpected /proc/%d/stat", pid)
	}
	fields := bytes.Fields(data[end+1:])
	if len(fields) < 3 || len(fields[0]) != 1 {
		return Process{}, fmt.Errorf("procgroup: unexpected /proc/%d/stat", pid)
	}
	ppid, err1 := strconv.Atoi(string(fields[1]))
	pgid, err2 := strconv.Atoi(string(fields[2]))
	if err1 != nil || err2 != nil {
		return Process{}, fmt.Errorf("procgroup: unexpected /proc/%d/stat", pid)
	}
	return Process{PID: pid, PPID: ppid, PGID: pgid, State: fields[0][0], Command: string(data[open+1 : end])}, nil
}

// RSS returns the resident set size of process pid in bytes, from
// /proc/<pid>/statm. It fails for a process that does not exist; a zombie
// has none.
func RSS(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, fmt.Errorf("procgroup: %w", err)
	}
	fields := bytes.Fields(data)
	if len(fields) < 2 {
		return 0, fmt.Errorf("procgroup: unexpected /proc/%d/statm", pid)
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("procgroup: unexpected /proc/%d/statm: %w", pid, err)
	}
	return pages * int64(os.Getpagesize()), nil
}
