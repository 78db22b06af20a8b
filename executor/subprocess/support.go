package subprocess

import (
	"errors"
	"fmt"
)

// UnsupportedError is New's error when the operating system cannot keep
// what the Options ask for, or cannot run the executor at all (Option is
// then empty). It matches errors.ErrUnsupported. The executor never
// silently does less than asked: a MemoryLimit that could not be checked
// would be a limit that does not hold.
type UnsupportedError struct {
	OS     string // runtime.GOOS
	Option string // the Options field, such as "MemoryLimit"; empty for the executor as a whole
	Reason string
}

// Error returns "executor/subprocess: <Option> is not supported on <OS>:
// <Reason>".
func (e *UnsupportedError) Error() string {
	what := e.Option
	if what == "" {
		what = "the subprocess executor"
	}
	return fmt.Sprintf("executor/subprocess: %s is not supported on %s: %s", what, e.OS, e.Reason)
}

// Unwrap returns errors.ErrUnsupported.
func (e *UnsupportedError) Unwrap() error { return errors.ErrUnsupported }

// supported says whether an Executor with opts keeps every promise on goos
// (a runtime.GOOS value); it is the whole per-OS table of what New refuses.
func supported(goos string, opts Options) error {
	switch goos {
	case "linux":
		return nil
	case "darwin", "windows":
		if opts.MemoryLimit > 0 {
			return &UnsupportedError{OS: goos, Option: "MemoryLimit",
				Reason: "another process's resident memory can only be read on linux (/proc/<pid>/statm)"}
		}
		return nil
	}
	return &UnsupportedError{OS: goos, Reason: "process groups and their mechanics are implemented for linux, darwin and windows"}
}
