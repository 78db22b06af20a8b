package flow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/task"
)

// Sentinel errors. Check them with errors.Is; each typed error below
// matches the sentinel of its kind.
var (
	// ErrCycle: the flow's edges make a cycle (only After can make one).
	ErrCycle = errors.New("flow: cycle")
	// ErrDuplicateName: two nodes, or a node and a parameter, share a name.
	ErrDuplicateName = errors.New("flow: duplicate name")
	// ErrMissingUpstream: a node reads, or waits for, a nil node or a node
	// or parameter of another Builder.
	ErrMissingUpstream = errors.New("flow: missing upstream")
	// ErrNilTask: Add or Map was given a nil task.
	ErrNilTask = errors.New("flow: nil task")
	// ErrNotMapped: Outcomes was given a node that Map did not make.
	ErrNotMapped = errors.New("flow: not a mapped node")

	// ErrMissingParam: a run has no value for a required parameter.
	ErrMissingParam = errors.New("flow: missing parameter")
	// ErrUnknownParam: a run was given a value for a parameter that is not
	// in the flow (another flow's, or one added after Build), or a zero Arg.
	ErrUnknownParam = errors.New("flow: unknown parameter")
	// ErrDuplicateArg: a run was given two values for one parameter.
	ErrDuplicateArg = errors.New("flow: parameter set twice")

	// ErrTimeout matches every *TimeoutError: a flow run stopped by its
	// Options.Timeout. It is not executor.ErrTimeout, which means that a
	// task overran its own limit.
	ErrTimeout = errors.New("flow: run timed out")

	// ErrTriggerFailed matches every *TriggerError.
	ErrTriggerFailed = errors.New("flow: trigger failed")
)

// BuildError is one problem Build found. Build returns all of them joined
// with errors.Join; each matches its sentinel with errors.Is.
type BuildError struct {
	Flow  string
	Err   error    // the sentinel: ErrCycle, ErrDuplicateName, ErrMissingUpstream, ErrNilTask or ErrNotMapped
	Tasks []string // the offending nodes; for a cycle, its path, the first node repeated at the end
	What  string   // what is wrong, in words
}

// Error returns the message, which names the task where there is one.
func (e *BuildError) Error() string {
	return fmt.Sprintf("flow %q: %s: %s", e.Flow, strings.TrimPrefix(e.Err.Error(), "flow: "), e.What)
}

// Unwrap returns the sentinel.
func (e *BuildError) Unwrap() error { return e.Err }

// ParamError is a run's parameter problem, found before any task starts.
type ParamError struct {
	Flow  string
	Param string // the parameter's name; empty for a zero Arg
	Err   error  // ErrMissingParam, ErrUnknownParam or ErrDuplicateArg
}

// Error returns the message, which names the task where there is one.
func (e *ParamError) Error() string {
	return fmt.Sprintf("flow %q: %s %q", e.Flow, strings.TrimPrefix(e.Err.Error(), "flow: "), e.Param)
}

// Unwrap returns the sentinel.
func (e *ParamError) Unwrap() error { return e.Err }

// TimeoutError reports a flow run stopped by its Options.Timeout. It
// matches ErrTimeout and context.DeadlineExceeded, never
// executor.ErrTimeout. It is also the cause (context.Cause) of the context
// the run's calls get; to the tasks it stops it is a cancellation from
// outside, not a limit of their own, so its class is
// executor.ClassCanceled and they end Cancelled, never TimedOut.
type TimeoutError struct {
	Flow  string
	Limit time.Duration
}

// Error returns the message, which names the task where there is one.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("flow %q: run timed out (limit %v)", e.Flow, e.Limit)
}

// Is reports whether target is ErrTimeout or context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// ErrorClass returns executor.ClassCanceled.
func (e *TimeoutError) ErrorClass() executor.Class { return executor.ClassCanceled }

// TaskError is one task run's failure in a flow run's error.
type TaskError struct {
	Task  string     // the run's label: the node's name, or "name[i]"
	State task.State // Failed, TimedOut, TriggerFailed or Cancelled
	Err   error
}

// Error returns the message, which names the task where there is one.
func (e *TaskError) Error() string {
	return fmt.Sprintf("flow: task %q %v: %v", e.Task, e.State, e.Err)
}

// Unwrap returns the task run's error.
func (e *TaskError) Unwrap() error { return e.Err }

// TriggerError is the error of a task that ended TriggerFailed: its
// trigger refused the states of its upstream tasks.
type TriggerError struct {
	Task     string
	Trigger  task.Trigger
	Upstream []Upstream
}

// Upstream is an upstream task's name and final state, in a TriggerError.
type Upstream struct {
	Task  string
	State task.State
}

// Error returns the message, which names the task where there is one.
func (e *TriggerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flow: task %q not run: trigger %v refused upstream ", e.Task, e.Trigger)
	for i, u := range e.Upstream {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%v", u.Task, u.State)
	}
	return b.String()
}

// Is reports whether target is ErrTriggerFailed.
func (e *TriggerError) Is(target error) bool { return target == ErrTriggerFailed }
