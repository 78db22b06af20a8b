// Package wire holds the forms in which results and errors cross a process
// or machine boundary, shared by the subprocess and cluster executors so
// that an error means the same thing whichever way it travelled.
package wire

import (
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/executor"
)

// Error is an error in a form that crosses process and machine boundaries.
// It keeps the error's message and class, and the fields of the executor
// package's typed errors, so that Decode rebuilds a *executor.TimeoutError
// as a *executor.TimeoutError, and so on.
type Error struct {
	Class   executor.Class `json:"class"`
	Message string         `json:"message"`
	Task    string         `json:"task,omitempty"`

	Stack string `json:"stack,omitempty"` // ClassPanic: the panicking goroutine's stack
	Value string `json:"value,omitempty"` // ClassPanic: the panic value's text

	Limit       time.Duration `json:"limit,omitempty"` // ClassTimeout
	Elapsed     time.Duration `json:"elapsed,omitempty"`
	Enforcement string        `json:"enforcement,omitempty"`
	Stopped     bool          `json:"stopped,omitempty"`

	Reason string `json:"reason,omitempty"` // ClassCrash
	Stderr string `json:"stderr,omitempty"`

	Type  string `json:"type,omitempty"`  // ClassBadInput, ClassBadOutput: the Go type
	Cause string `json:"cause,omitempty"` // ClassBadInput, ClassBadOutput: the codec's message
	Where string `json:"where,omitempty"` // ClassUnknownTask
}

// EncodeError returns the wire form of err, or nil for a nil err.
func EncodeError(err error) *Error {
	if err == nil {
		return nil
	}
	w := &Error{Class: executor.ClassOf(err), Message: err.Error()}
	var (
		te *executor.TimeoutError
		pe *executor.PanicError
		ce *executor.CrashError
		ie *executor.InputError
		oe *executor.OutputError
		ue *executor.UnknownTaskError
	)
	switch {
	case w.Class == executor.ClassTimeout && errors.As(err, &te):
		w.Task, w.Limit, w.Elapsed, w.Enforcement, w.Stopped = te.Task, te.Limit, te.Elapsed, te.Enforcement.String(), te.Stopped
	case w.Class == executor.ClassPanic && errors.As(err, &pe):
		w.Task, w.Stack, w.Value = pe.Task, string(pe.Stack), panicText(pe.Value)
	case w.Class == executor.ClassCrash && errors.As(err, &ce):
		w.Task, w.Reason, w.Stderr = ce.Task, ce.Reason, ce.Stderr
	case w.Class == executor.ClassBadInput && errors.As(err, &ie):
		w.Task, w.Type, w.Cause = ie.Task, ie.Type, errText(ie.Err)
	case w.Class == executor.ClassBadOutput && errors.As(err, &oe):
		w.Task, w.Type, w.Cause = oe.Task, oe.Type, errText(oe.Err)
	case w.Class == executor.ClassUnknownTask && errors.As(err, &ue):
		w.Task, w.Where = ue.Task, ue.Where
	}
	return w
}

func panicText(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	return fmt.Sprint(v)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Decode rebuilds the error: the executor package's typed error for the
// classes that have one, a *executor.RemoteError with the original message
// and class otherwise. A nil *Error decodes to nil. task names the task
// when the wire form does not.
func (w *Error) Decode(task string) error {
	if w == nil {
		return nil
	}
	if w.Task != "" {
		task = w.Task
	}
	switch w.Class {
	case executor.ClassTimeout:
		if w.Enforcement == "" {
			// Another error of the timeout class (a Classifier of the
			// task's own), not the executor's *TimeoutError: keep it as
			// it was rather than make up a limit and an elapsed time.
			return &executor.RemoteError{Task: task, Class: w.Class, Message: w.Message}
		}
		enf := executor.Soft
		if w.Enforcement == executor.Hard.String() {
			enf = executor.Hard
		}
		return &executor.TimeoutError{Task: task, Limit: w.Limit, Elapsed: w.Elapsed, Enforcement: enf, Stopped: w.Stopped}
	case executor.ClassPanic:
		var v any = w.Value
		if w.Value == executor.ErrGoexit.Error() {
			v = executor.ErrGoexit // errors.Is(err, executor.ErrGoexit) holds across the boundary
		}
		return &executor.PanicError{Task: task, Value: v, Stack: []byte(w.Stack)}
	case executor.ClassCrash:
		return &executor.CrashError{Task: task, Reason: w.Reason, Stderr: w.Stderr}
	case executor.ClassBadInput:
		return &executor.InputError{Task: task, Type: w.Type, Err: errors.New(w.Cause)}
	case executor.ClassBadOutput:
		return &executor.OutputError{Task: task, Type: w.Type, Err: errors.New(w.Cause)}
	case executor.ClassUnknownTask:
		return &executor.UnknownTaskError{Task: task, Where: w.Where}
	case "":
		return &executor.RemoteError{Task: task, Class: executor.ClassFailure, Message: w.Message}
	}
	return &executor.RemoteError{Task: task, Class: w.Class, Message: w.Message}
}
