package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat's times.
const clockTick = 10 * time.Millisecond

// selfCPU is this process's CPU time so far (user and system).
func selfCPU() time.Duration {
	u, s, _, _, _ := procTimes("self")
	return u + s
}

// serverCPU is the CPU time so far of the local Postgres server whose
// data directory is dataDir: the postmaster, its live children, and its
// children that have exited (backends of closed connections). Zero when
// it cannot be read.
func serverCPU(dataDir string) time.Duration {
	if dataDir == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	u, s, cu, cs, _ := procTimes(pid)
	total := u + s + cu + cs
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		u, s, _, _, ppid := procTimes(e.Name())
		if ppid == pid {
			total += u + s
		}
	}
	return total
}

// procTimes reads utime, stime, cutime, cstime and the parent's pid from
// /proc/<pid>/stat.
func procTimes(pid string) (u, s, cu, cs time.Duration, ppid string) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return
	}
	// The command name is in parentheses and may hold spaces.
	rest := string(b)
	if k := strings.LastIndexByte(rest, ')'); k >= 0 {
		rest = rest[k+1:]
	}
	f := strings.Fields(rest) // f[0] is the state (field 3)
	if len(f) < 15 {
		return
	}
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * clockTick
	}
	return tick(11), tick(12), tick(13), tick(14), f[1]
}
