// Package limit bounds how many task runs use a resource at once
// (concurrency limits) and how often they start (rate limits), by key: "at
// most 3 calls to the payments API at once", "at most 100 requests a
// minute to this vendor", "one run per customer at a time".
//
// Pick it when a bound belongs to a resource rather than to an executor: a
// pool bounds one executor's goroutines, a limit bounds every task run
// that names it, in every flow run that shares the Set, and, with a run
// store (Options.Store), in every process that shares the store.
//
// Define the limits once, in a Set, give the Set to the flow runs
// (flow.RunOptions.Limits), and name them in the tasks' options
// (task.Options.Limits) with an optional key function of the input:
//
//	set, err := limit.New(limit.Options{},
//		limit.Limit{Name: "payments", Concurrency: 3},
//		limit.Limit{Name: "vendor", Rate: 100, Per: time.Minute},
//		limit.Limit{Name: "customer", Concurrency: 1})
//	charge := task.New("charge", chargeFn, task.Options{Limits: []limit.Use{
//		{Limit: "payments"},
//		limit.Keyed("customer", func(o Order) string { return o.Customer }),
//	}})
//
// Each attempt of a task run takes its limits before it is submitted to
// the executor (the task run is Waiting meanwhile), and gives its
// concurrency slots back when the attempt ends, however it ends; a retry
// takes them again. In one process a Set is in memory; with a store its
// slots are leases in the store, renewed by a heartbeat, so that a process
// that dies gives its slots back within two heartbeat intervals. See
// docs/limits.md.
package limit

import (
	"cmp"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Limit is a named limit. A limit has a concurrency bound, a rate bound,
// or both; each key of it (see Use) is bounded on its own.
type Limit struct {
	// Name names the limit in task options, errors and the store.
	Name string

	// Concurrency is how many attempts may hold the limit at once, per
	// key. Zero means no concurrency bound.
	Concurrency int

	// Rate is how many attempts may start per Per, per key, as a token
	// bucket: one token every Per/Rate, at most Burst kept. Zero means no
	// rate bound; a Rate needs a positive Per.
	Rate int
	Per  time.Duration

	// Burst is how many attempts may start at once after an idle time,
	// for a rate limit. Zero means 1: starts are spaced Per/Rate apart.
	Burst int
}

// interval returns the rate's token interval (rounded up, so that the
// rate is never exceeded) and its burst.
func (l *Limit) interval() (time.Duration, int) {
	iv := (l.Per + time.Duration(l.Rate) - 1) / time.Duration(l.Rate)
	return iv, max(l.Burst, 1)
}

func (l *Limit) check() error {
	switch {
	case l.Name == "":
		return &LimitError{Err: errors.New("a limit needs a name")}
	case l.Concurrency < 0 || l.Rate < 0 || l.Burst < 0:
		return &LimitError{Limit: l.Name, Err: errors.New("a negative concurrency, rate or burst")}
	case l.Concurrency == 0 && l.Rate == 0:
		return &LimitError{Limit: l.Name, Err: ErrZero}
	case l.Rate > 0 && l.Per <= 0:
		return &LimitError{Limit: l.Name, Err: fmt.Errorf("a rate of %d needs a positive Per (got %v)", l.Rate, l.Per)}
	case l.Rate > 0 && l.Per < time.Duration(l.Rate):
		return &LimitError{Limit: l.Name, Err: fmt.Errorf("a rate of %d per %v is above one start per nanosecond", l.Rate, l.Per)}
	case l.Rate > 0 && l.Burst > 1<<20:
		return &LimitError{Limit: l.Name, Err: fmt.Errorf("a burst of %d is above 2^20", l.Burst)}
	}
	return nil
}

// Use names a limit that a task's attempts take (task.Options.Limits),
// and how each attempt's key of it is found.
type Use struct {
	// Limit is the limit's name in the Set.
	Limit string

	// Key returns the key of an attempt's input: attempts with different
	// keys are bounded apart. Nil means one key for all (""). A Key that
	// panics fails that task run alone, with a *KeyError; it is not
	// retried.
	Key func(input any) string
}

// Keyed returns a Use of limit whose key is key of the task's typed
// input. An input of another type than In (a Keyed on the wrong task)
// fails the task run with a *KeyError.
func Keyed[In any](limit string, key func(In) string) Use {
	return Use{Limit: limit, Key: func(input any) string {
		v, ok := input.(In)
		if !ok && input != nil {
			panic(fmt.Sprintf("limit: the key of %q takes a %T, the input is a %T", limit, *new(In), input))
		}
		return key(v)
	}}
}

// Key is one key of one limit, as an attempt takes it.
type Key struct {
	Limit string
	Key   string
}

// part is one bound an attempt waits for: a key's concurrency or its
// rate. Concurrency parts come first, so that a start's rate token is
// taken once the attempt can start.
type part struct {
	Key
	rate bool
}

// Keys returns the keys an attempt of task on input takes, one per
// distinct (limit, key), sorted. A Key function that panics is a
// *KeyError naming the task and the limit.
func Keys(task string, uses []Use, input any) ([]Key, error) {
	out := make([]Key, 0, len(uses))
	for _, u := range uses {
		k := Key{Limit: u.Limit}
		if u.Key != nil {
			var err error
			if k.Key, err = callKey(task, u, input); err != nil {
				return nil, err
			}
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Key) int { return cmp.Or(cmp.Compare(a.Limit, b.Limit), cmp.Compare(a.Key, b.Key)) })
	return slices.Compact(out), nil
}

func callKey(task string, u Use, input any) (key string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &KeyError{Task: task, Limit: u.Limit, Value: v, Stack: debug.Stack()}
		}
	}()
	return u.Key(input), nil
}

// Wait says where an attempt waits: the first limit and key it could not
// take at once, and its place in that key's queue in this process (1 is
// next). The zero Wait means it did not wait.
type Wait struct {
	Limit, Key string
	Rate       bool // waiting for a rate token, not a concurrency slot
	Position   int
}

// String describes the wait for change records: `limit "api" key "c1":
// position 3 (concurrency)`.
func (w Wait) String() string {
	kind := "concurrency"
	if w.Rate {
		kind = "rate"
	}
	return fmt.Sprintf("limit %q key %q: position %d (%s)", w.Limit, w.Key, w.Position, kind)
}

// Errors.
var (
	// ErrUnknown: a task names a limit the Set does not define (a
	// *UseError).
	ErrUnknown = errors.New("limit: unknown limit")
	// ErrZero: a limit without a concurrency or a rate bound (a
	// *LimitError).
	ErrZero = errors.New("limit: a limit of zero (neither Concurrency nor Rate is set)")
	// ErrClosed: the Set was closed.
	ErrClosed = errors.New("limit: set closed")
	// ErrNoSet: a task names limits, and the run has no Set.
	ErrNoSet = errors.New("limit: the task names limits and the run has no limit set (flow.RunOptions.Limits)")
)

// LimitError is a Limit that New refuses: no name, a duplicate, a limit of
// zero (ErrZero), a negative bound, a rate without a period.
type LimitError struct {
	Limit string
	Err   error
}

// Error names the limit and what is wrong.
func (e *LimitError) Error() string {
	return fmt.Sprintf("limit: limit %q: %s", e.Limit, strings.TrimPrefix(e.Err.Error(), "limit: "))
}

// Unwrap returns what is wrong.
func (e *LimitError) Unwrap() error { return e.Err }

// UseError is a task's Use that a run refuses before it starts: a limit
// the Set does not define (ErrUnknown), or limits without a Set (ErrNoSet).
type UseError struct {
	Task, Limit string
	Err         error
}

// Error names the task and the limit.
func (e *UseError) Error() string {
	return fmt.Sprintf("limit: task %q names limit %q: %s", e.Task, e.Limit, strings.TrimPrefix(e.Err.Error(), "limit: "))
}

// Unwrap returns ErrUnknown or ErrNoSet.
func (e *UseError) Unwrap() error { return e.Err }

// KeyError is a Use's Key function that panicked on a task run's input;
// it fails that task run alone.
type KeyError struct {
	Task, Limit string
	Value       any    // what the function panicked with
	Stack       []byte // where
}

// Error names the task, the limit and the panic's value.
func (e *KeyError) Error() string {
	return fmt.Sprintf("limit: the key function of limit %q panicked on task %q's input: %v", e.Limit, e.Task, e.Value)
}
