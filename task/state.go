package task

import "fmt"

// State is where a task run is. A run starts Pending, is Running during
// each attempt and Retrying between attempts (Waiting, before an attempt,
// while it waits for its limits: Options.Limits), and ends in exactly one final
// state: Success, Failed, TimedOut, Skipped, TriggerFailed, Cancelled, or
// Cached (a flow run with a store found the result in its cache; see
// Options.CacheFor).
type State uint8

const (
	Pending       State = iota // not started
	Running                    // an attempt is running
	Retrying                   // an attempt failed; waiting to try again
	Success                    // an attempt returned a nil error
	Failed                     // the last attempt failed, or a failure was final (task.Fail, bad input)
	TimedOut                   // the last attempt overran its limit
	Skipped                    // the task asked to be skipped, or an upstream was skipped
	TriggerFailed              // the trigger refused to run the task; it never ran
	Cancelled                  // the run's context ended first
	Cached                     // the result came from the cache; the task did not run
	Waiting                    // the next attempt waits for the task's limits (Options.Limits)
)

var stateNames = [...]string{"Pending", "Running", "Retrying", "Success", "Failed", "TimedOut", "Skipped", "TriggerFailed", "Cancelled", "Cached", "Waiting"}

// String returns the state's name, e.g. "TimedOut".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Final reports whether s ends a task run.
func (s State) Final() bool { return s >= Success && s <= Cached }

// Successful reports whether s counts as success for downstream triggers:
// Success, Cached and Skipped (a skip is not a failure).
func (s State) Successful() bool { return s == Success || s == Skipped || s == Cached }

// HasValue reports whether a run in state s has a result: Success and
// Cached.
func (s State) HasValue() bool { return s == Success || s == Cached }

// Failure reports whether s counts as failure for downstream triggers:
// Failed, TimedOut and TriggerFailed. Cancelled is neither a success nor a
// failure.
func (s State) Failure() bool { return s == Failed || s == TimedOut || s == TriggerFailed }

// MarshalText returns the state's name, for JSON run records.
func (s State) MarshalText() ([]byte, error) {
	if int(s) >= len(stateNames) {
		return nil, fmt.Errorf("task: invalid state %d", uint8(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText parses a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("task: unknown state %q", b)
}

// Trigger decides, from the final states of a task's upstream tasks,
// whether the task runs. A task whose trigger refuses ends TriggerFailed
// without running. A task with no upstream tasks always runs.
type Trigger uint8

const (
	AllSuccessful Trigger = iota // every upstream Success or Skipped (the default)
	AllFinished                  // every upstream final, whatever its state
	AllFailed                    // every upstream Failed, TimedOut or TriggerFailed
	AnySuccessful                // at least one upstream Success or Skipped
	AnyFailed                    // at least one upstream Failed, TimedOut or TriggerFailed
)

var triggerNames = [...]string{"all-successful", "all-finished", "all-failed", "any-successful", "any-failed"}

// String returns the trigger's name, e.g. "all-successful".
func (t Trigger) String() string {
	if int(t) < len(triggerNames) {
		return triggerNames[t]
	}
	return fmt.Sprintf("Trigger(%d)", uint8(t))
}

// Allows reports whether a task with this trigger runs after upstream
// tasks that ended in the given states. It is true for no upstream states.
// A Cancelled upstream is neither a success nor a failure.
func (t Trigger) Allows(upstream []State) bool {
	if len(upstream) == 0 {
		return true
	}
	var ok, failed int
	for _, s := range upstream {
		switch {
		case s.Successful():
			ok++
		case s.Failure():
			failed++
		}
	}
	switch t {
	case AllSuccessful:
		return ok == len(upstream)
	case AllFinished:
		for _, s := range upstream {
			if !s.Final() {
				return false
			}
		}
		return true
	case AllFailed:
		return failed == len(upstream)
	case AnySuccessful:
		return ok > 0
	case AnyFailed:
		return failed > 0
	}
	return false
}
