// Package callstats keeps the counters behind executor.Stats, so that
// every executor counts a call's outcome the same way: a nil error is a
// success, a timeout or a cancellation (by error class) is counted as such,
// anything else is a failure.
package callstats

import (
	"sync/atomic"

	"github.com/flowline-go/flowline/executor"
)

// Counters are an executor's Stats as atomics. The zero value is ready to
// use; all fields and methods are safe for concurrent use. Executors add to
// Submitted, Running and Abandoned directly and call Ended once per call.
type Counters struct {
	Submitted atomic.Uint64
	Running   atomic.Int64
	Abandoned atomic.Int64

	succeeded, failed, timedOut, canceled atomic.Uint64
}

// Ended counts a call that ended with err.
func (c *Counters) Ended(err error) {
	switch {
	case err == nil:
		c.succeeded.Add(1)
	case executor.ClassOf(err) == executor.ClassTimeout:
		c.timedOut.Add(1)
	case executor.ClassOf(err) == executor.ClassCanceled:
		c.canceled.Add(1)
	default:
		c.failed.Add(1)
	}
}

// EndedTimedOut counts a call known to have ended with a timeout, as
// Ended counts one with an *executor.TimeoutError, without classifying an
// error (which walks its chain with errors.As).
func (c *Counters) EndedTimedOut() { c.timedOut.Add(1) }

// EndedCanceled counts a call known to have been cancelled, as Ended
// counts one with an *executor.CanceledError.
func (c *Counters) EndedCanceled() { c.canceled.Add(1) }

// Snapshot returns the counters as executor.Stats.
func (c *Counters) Snapshot() executor.Stats {
	return executor.Stats{
		Submitted: c.Submitted.Load(),
		Running:   c.Running.Load(),
		Succeeded: c.succeeded.Load(),
		Failed:    c.failed.Load(),
		TimedOut:  c.timedOut.Load(),
		Canceled:  c.canceled.Load(),
		Abandoned: c.Abandoned.Load(),
	}
}
