package observe

import "time"

// WaitObserver is an Observer that also wants to know of task runs'
// waits for their limits (task.Options.Limits, package limit). It is
// optional: flowline asks an Observer for it with a type assertion, so an
// Observer without these methods simply does not see waits.
//
// A wait comes before the attempt it waits for: WaitStart, then WaitEnd
// at once before that attempt's AttemptStart, or before the task run's
// TaskEnd if the run ends while waiting (cancelled, its flow timed out).
type WaitObserver interface {
	Observer
	WaitStart(*Wait)
	WaitEnd(*Wait)
}

// Wait is one wait of a task run for its limits.
type Wait struct {
	Task    *TaskRun
	Attempt int // the number of the attempt that waits
	// Limit and Key name the first limit and key the attempt could not
	// take at once, Position its place in that key's queue in this
	// process (1 is next); Rate is set for a rate limit's token, clear
	// for a concurrency slot.
	Limit, Key string
	Rate       bool
	Position   int
	Start      time.Time
	End        time.Time // at WaitEnd
	// Granted is set at WaitEnd when the attempt took its limits (it
	// starts next), clear when the task run ended while waiting.
	Granted bool
	Data    any
}
