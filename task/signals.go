package task

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
)

// ErrSkip matches every error made by Skip.
var ErrSkip = errors.New("task: skipped")

// SkipError is the signal a task returns to end its run Skipped. It is not
// a failure: downstream tasks see a skipped upstream (and are skipped too
// unless they set RunOnUpstreamSkip). It keeps its meaning across process
// boundaries.
type SkipError struct {
	Reason string
}

// Skip returns the signal that ends the task run Skipped, without retries.
func Skip(reason string) error { return &SkipError{Reason: reason} }

// Error returns the message, which names the task where there is one.
func (e *SkipError) Error() string { return "task: skipped: " + e.Reason }

// Is reports whether target is ErrSkip.
func (e *SkipError) Is(target error) bool { return target == ErrSkip }

// ErrorClass returns executor.ClassSkip.
func (e *SkipError) ErrorClass() executor.Class { return executor.ClassSkip }

// FailError is the signal a task returns to fail at once, without the
// retries its options allow. It wraps the task's error.
type FailError struct {
	Err error
}

// Fail returns the signal that ends the task run Failed with err, without
// retries. Fail(nil) fails with a generic error.
func Fail(err error) error {
	if err == nil {
		err = errors.New("task: failed")
	}
	return &FailError{Err: err}
}

// Error returns the message, which names the task where there is one.
func (e *FailError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error, for errors.Is and errors.As.
func (e *FailError) Unwrap() error { return e.Err }

// ErrorClass returns executor.ClassFatal.
func (e *FailError) ErrorClass() executor.Class { return executor.ClassFatal }

// Logger returns the logger of the task run that ctx belongs to, with the
// task name, run id and attempt attached. Outside a task it discards
// everything; it never returns nil. It works wherever the task runs, in a
// worker process or on a remote worker too.
func Logger(ctx context.Context) hclog.Logger { return executor.Logger(ctx) }

// Info returns the identity of the attempt that ctx belongs to (task name,
// run id, attempt number), and false outside a task. Task code can key
// idempotent side effects on it.
func Info(ctx context.Context) (executor.Identity, bool) { return executor.CallInfo(ctx) }
