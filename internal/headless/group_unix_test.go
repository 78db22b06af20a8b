//go:build linux || darwin

package headless_test

import "github.com/flowline-go/flowline/internal/procgroup"

// leftover reports whether a process of group pgid is left (zombies of
// other parents do not count: only they can reap them).
func leftover(pgid int) bool { return !procgroup.Gone(pgid, false) }
