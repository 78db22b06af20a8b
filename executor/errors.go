package executor

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Check them with errors.Is; the typed errors below match
// the sentinel of their kind.
var (
	// ErrTimeout matches every error that reports a call overrunning its
	// limit, in particular every *TimeoutError.
	ErrTimeout = errors.New("executor: timeout")

	// ErrClosed is returned by Submit after Shutdown has begun.
	ErrClosed = errors.New("executor: closed")

	// ErrQueueFull is returned by a non-blocking submit when the executor has
	// no room for one more call.
	ErrQueueFull = errors.New("executor: queue full")

	// ErrBadInput matches every *InputError: an input that does not decode
	// into, or is not of, the task's input type.
	ErrBadInput = errors.New("executor: bad input")

	// ErrBadOutput matches every *OutputError: a result that cannot be
	// encoded or decoded as the task's output type.
	ErrBadOutput = errors.New("executor: bad output")

	// ErrUnknownTask matches every *UnknownTaskError.
	ErrUnknownTask = errors.New("executor: unknown task")

	// ErrDuplicateTask is returned by Registry.Register for a name that is
	// already registered.
	ErrDuplicateTask = errors.New("executor: duplicate task name")

	// ErrCrash matches every *CrashError.
	ErrCrash = errors.New("executor: worker crashed")

	// ErrGoexit is the Value of the *PanicError that answers a call whose
	// task called runtime.Goexit (see Handler.RunOnGoexit). Goexit is
	// classed as a panic (ClassPanic): the task ended without returning.
	// errors.Is(err, ErrGoexit) holds for that *PanicError, across process
	// boundaries too.
	ErrGoexit = errors.New("runtime.Goexit was called")
)

// Enforcement says how an executor enforces a call's time limit.
type Enforcement uint8

const (
	// Soft: at the limit the call's context is cancelled and the caller gets
	// a *TimeoutError at once; work that ignores its context is abandoned
	// (it may still be running) and counted in Stats.Abandoned.
	Soft Enforcement = iota + 1
	// Hard: at the limit the process running the call is terminated
	// (SIGTERM, then SIGKILL after the grace period) and reaped before the
	// caller gets its *TimeoutError; nothing of the call is left running.
	Hard
)

// String returns "soft", "hard", or "enforcement(N)" for an unknown value.
func (e Enforcement) String() string {
	switch e {
	case Soft:
		return "soft"
	case Hard:
		return "hard"
	}
	return fmt.Sprintf("enforcement(%d)", uint8(e))
}

// TimeoutError reports a call that overran its limit. It matches ErrTimeout
// and context.DeadlineExceeded with errors.Is, and never context.Canceled.
//
// A soft executor returns it at the limit, with Stopped set only if the work
// had already returned; a hard executor returns it once the process group is
// dead and reaped, with Stopped set.
type TimeoutError struct {
	Task        string        // the task's registered name
	Limit       time.Duration // the limit that was overrun
	Elapsed     time.Duration // time from the call's start to the error
	Enforcement Enforcement   // how the limit was enforced
	Stopped     bool          // whether the work is known to have stopped
}

// Error returns the message, which names the task where there is one.
func (e *TimeoutError) Error() string {
	what := "the work was told to stop and may still be running"
	if e.Stopped {
		what = "the work is stopped"
	}
	return fmt.Sprintf("executor: task %q timed out after %v (limit %v, %v: %s)",
		e.Task, e.Elapsed.Round(time.Microsecond), e.Limit, e.Enforcement, what)
}

// Is reports whether target is ErrTimeout or context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// Timeout reports true, as net.Error does for timeouts.
func (e *TimeoutError) Timeout() bool { return true }

// ErrorClass returns ClassTimeout.
func (e *TimeoutError) ErrorClass() Class { return ClassTimeout }

// PanicError reports a call that panicked. Value is the value passed to
// panic (for a panic in another process, its text); Stack is the stack of
// the panicking goroutine.
type PanicError struct {
	Task  string
	Value any
	Stack []byte
}

// Error returns the message, which names the task where there is one.
func (e *PanicError) Error() string {
	return fmt.Sprintf("executor: task %q panicked: %v", e.Task, e.Value)
}

// Unwrap returns Value when it is an error, so errors.Is and errors.As see
// through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// ErrorClass returns ClassPanic.
func (e *PanicError) ErrorClass() Class { return ClassPanic }

// CrashError reports a call whose worker process died under it (an exit, a
// signal, a memory limit) or broke the protocol. The worker is replaced;
// other calls are unaffected.
type CrashError struct {
	Task   string
	Reason string // what happened, e.g. "exit status 3" or "signal: killed"
	Stderr string // the tail of the worker's stderr, possibly empty
}

// Error returns the message, which names the task where there is one.
func (e *CrashError) Error() string {
	msg := fmt.Sprintf("executor: task %q: worker crashed: %s", e.Task, e.Reason)
	if e.Stderr != "" {
		msg += "; stderr tail: " + e.Stderr
	}
	return msg
}

// Is reports whether target is ErrCrash.
func (e *CrashError) Is(target error) bool { return target == ErrCrash }

// ErrorClass returns ClassCrash.
func (e *CrashError) ErrorClass() Class { return ClassCrash }

// InputError reports an input that is not of, or does not decode into, the
// task's input type. It is never retried and never reported as a timeout.
type InputError struct {
	Task string
	Type string // the task's input type, e.g. "main.Order"
	Err  error  // the decoder's error, or a description of the mismatch
}

// Error returns the message, which names the task where there is one.
func (e *InputError) Error() string {
	return fmt.Sprintf("executor: task %q: bad input for type %s: %v", e.Task, e.Type, e.Err)
}

// Unwrap returns the wrapped error, for errors.Is and errors.As.
func (e *InputError) Unwrap() error { return e.Err }

// Is reports whether target is ErrBadInput.
func (e *InputError) Is(target error) bool { return target == ErrBadInput }

// ErrorClass returns ClassBadInput.
func (e *InputError) ErrorClass() Class { return ClassBadInput }

// OutputError reports a result that cannot be encoded (or decoded) as the
// task's output type.
type OutputError struct {
	Task string
	Type string // the task's output type
	Err  error
}

// Error returns the message, which names the task where there is one.
func (e *OutputError) Error() string {
	return fmt.Sprintf("executor: task %q: bad output of type %s: %v", e.Task, e.Type, e.Err)
}

// Unwrap returns the wrapped error, for errors.Is and errors.As.
func (e *OutputError) Unwrap() error { return e.Err }

// Is reports whether target is ErrBadOutput.
func (e *OutputError) Is(target error) bool { return target == ErrBadOutput }

// ErrorClass returns ClassBadOutput.
func (e *OutputError) ErrorClass() Class { return ClassBadOutput }

// UnknownTaskError reports a task name that is not registered where the call
// was to run (typically a worker process whose main did not register it).
type UnknownTaskError struct {
	Task  string
	Where string // where the lookup failed, e.g. "worker pid 4242"; may be empty
}

// Error returns the message, which names the task where there is one.
func (e *UnknownTaskError) Error() string {
	if e.Where == "" {
		return fmt.Sprintf("executor: unknown task %q (not registered)", e.Task)
	}
	return fmt.Sprintf("executor: unknown task %q (not registered in %s)", e.Task, e.Where)
}

// Is reports whether target is ErrUnknownTask.
func (e *UnknownTaskError) Is(target error) bool { return target == ErrUnknownTask }

// ErrorClass returns ClassUnknownTask.
func (e *UnknownTaskError) ErrorClass() Class { return ClassUnknownTask }

// RemoteError is an error that crossed a process or machine boundary and
// has no richer local type: the task's own error, a skip or fail signal, a
// cancellation. It keeps the message and the class, not the identity:
// errors.Is against the task's own sentinel errors does not hold, but
// errors.Is(err, context.Canceled) does for ClassCanceled.
type RemoteError struct {
	Task    string
	Class   Class
	Message string
}

// Error returns the original message unchanged.
func (e *RemoteError) Error() string { return e.Message }

// Is reports whether target is context.Canceled for a cancelled call.
func (e *RemoteError) Is(target error) bool {
	return e.Class == ClassCanceled && target == context.Canceled
}

// ErrorClass returns the class the error had where it was raised.
func (e *RemoteError) ErrorClass() Class { return e.Class }

// ShutdownError is returned by Shutdown when its context ends before every
// call the executor owns has returned. Running names them, as
// "task (run r, attempt n)", so an operator knows what is stuck.
type ShutdownError struct {
	Running []string
	Err     error // the context's error
}

// Error returns the message, which names the task where there is one.
func (e *ShutdownError) Error() string {
	return fmt.Sprintf("executor: shutdown: %v with %d call(s) still running: %v", e.Err, len(e.Running), e.Running)
}

// Unwrap returns the wrapped error, for errors.Is and errors.As.
func (e *ShutdownError) Unwrap() error { return e.Err }

// Class is the kind of an error, kept when the error crosses a process or
// machine boundary and used by the task runner to decide what happens next.
type Class string

// The classes. An error with no class of its own is ClassFailure.
const (
	ClassFailure     Class = "failure"      // the task's own error: retried
	ClassFatal       Class = "fatal"        // a failure that must not be retried (task.Fail)
	ClassSkip        Class = "skip"         // the task asked to be skipped (task.Skip)
	ClassTimeout     Class = "timeout"      // the call overran its limit
	ClassCanceled    Class = "canceled"     // the caller cancelled the call
	ClassPanic       Class = "panic"        // the task panicked
	ClassCrash       Class = "crash"        // the worker process died or broke the protocol
	ClassBadInput    Class = "bad-input"    // the input does not fit the task
	ClassBadOutput   Class = "bad-output"   // the result cannot be encoded
	ClassUnknownTask Class = "unknown-task" // the task is not registered where it ran
)

// Classifier is implemented by errors that know their class. Errors of other
// packages (such as the task package's signals) implement it to keep their
// meaning across process boundaries.
type Classifier interface {
	ErrorClass() Class
}

// ClassOf returns the class of err: the class of the first error in its
// chain that implements Classifier, ClassCanceled for context.Canceled,
// and ClassFailure otherwise. ClassOf(nil) is "".
//
// Only the executor's own *TimeoutError (or another Classifier that says
// so) is ClassTimeout: a context.DeadlineExceeded of the task's own making,
// such as an HTTP client's deadline, is the task's failure (ClassFailure),
// with its message, in process and across process boundaries alike.
func ClassOf(err error) Class {
	if err == nil {
		return ""
	}
	var c Classifier
	if errors.As(err, &c) {
		return c.ErrorClass()
	}
	if errors.Is(err, context.Canceled) {
		return ClassCanceled
	}
	return ClassFailure
}

// CanceledError reports a call whose caller's context ended before the call
// returned. It matches context.Canceled (or context.DeadlineExceeded when the
// caller's own deadline passed) and the context's cause, never ErrTimeout:
// the caller gave up, the task did not overrun its limit.
type CanceledError struct {
	Task  string
	Err   error // the context's Err: context.Canceled or context.DeadlineExceeded
	Cause error // context.Cause of the context; may equal Err
}

// NewCanceledError returns the error for a call of task whose caller's
// context ctx has ended.
func NewCanceledError(task string, ctx context.Context) *CanceledError {
	return &CanceledError{Task: task, Err: ctx.Err(), Cause: context.Cause(ctx)}
}

// Error returns the message, which names the task where there is one.
func (e *CanceledError) Error() string {
	return fmt.Sprintf("executor: task %q cancelled: %v", e.Task, e.Cause)
}

// Unwrap returns the context's error only. The cause is kept for the message
// and for inspection, but not unwrapped: a cause that is itself a
// *TimeoutError (an outer limit) must not make a cancellation match
// ErrTimeout.
func (e *CanceledError) Unwrap() error { return e.Err }

// ErrorClass returns ClassCanceled.
func (e *CanceledError) ErrorClass() Class { return ClassCanceled }
