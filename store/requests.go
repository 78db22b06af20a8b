package store

import (
	"errors"
	"fmt"
)

// Requests ask a run's driver to do something: Store.RequestCancel and
// Store.RequestRetry record them, in a table of their own; the flow package
// performs and clears them. They come from another process (a dashboard, a
// CLI) that shares the store with the drivers.

// Request kinds, as RequestError.Request names them.
const (
	RequestCancelKind = "cancel"
	RequestRetryKind  = "retry"
)

var (
	// ErrFinished: a cancel was requested for a run that has ended (a
	// *RequestError).
	ErrFinished = errors.New("store: run has finished")
	// ErrNotRetryable: a retry was requested for a run that has not
	// ended, or that ended in a successful state (a *RequestError).
	ErrNotRetryable = errors.New("store: run is not retryable")
)

// RequestError is a request refused because of the run's state. It
// matches ErrFinished (a cancel of a finished run) or ErrNotRetryable (a
// retry of an unfinished or successful run).
type RequestError struct {
	Request string // RequestCancelKind or RequestRetryKind
	RunID   string
	State   string // the run's state when the request was refused
	Err     error  // ErrFinished or ErrNotRetryable
}

// Error names the request, the run and its state.
func (e *RequestError) Error() string {
	return fmt.Sprintf("store: cannot %s run %s: it is %s (%v)", e.Request, e.RunID, e.State, reason(e.Err))
}

func reason(err error) string {
	switch err {
	case ErrFinished:
		return "it has finished"
	case ErrNotRetryable:
		return "only a finished run that did not succeed can be retried"
	}
	return fmt.Sprint(err)
}

// Unwrap returns ErrFinished or ErrNotRetryable.
func (e *RequestError) Unwrap() error { return e.Err }

// Retryable reports whether a run in state, ended or not, may be retried:
// it has ended and its state is not a successful one (Success, Skipped,
// Cached).
func Retryable(state string, finished bool) bool {
	if !finished {
		return false
	}
	switch state {
	case "Success", "Skipped", "Cached":
		return false
	}
	return true
}
