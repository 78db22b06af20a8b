// Package timeline draws a run's attempts on a time axis, one lane per
// place they ran (a pool worker, a worker process, a remote worker), so you
// can see what ran where, for how long, and how it ended. It writes the
// Trace Event Format that chrome://tracing and Perfetto open, and a
// self-contained SVG that any browser shows.
//
// Build a Timeline from a flow run with FromRun, or from task results
// (single task runs') with FromResults, then call WriteTrace or WriteSVG.
// The SVG has a title (flow, run, executor, total), a bar per attempt
// labelled inside or, for a short one, beside it, the wait before each
// retry drawn and linked to the attempt it follows, and the abandoned tail
// of a soft timeout (work told to stop that may still run) drawn apart.
//
// An attempt's bar starts at task.Attempt.Start, when the attempt was
// submitted: on an executor that queues calls (a pool with more calls than
// workers, a busy subprocess executor) it includes the wait for a worker,
// so a lane may show attempts that overlap in time although its worker
// ran them one after the other.
package timeline

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/task"
)

// Outcome is how one attempt ended, which decides its colour.
type Outcome string

// The outcomes.
const (
	Succeeded Outcome = "success"
	Failed    Outcome = "failed"    // the task's error, a panic, a crash, a bad input
	TimedOut  Outcome = "timed out" // overran its limit
	Skipped   Outcome = "skipped"   // task.Skip
	Cancelled Outcome = "cancelled" // the run's context ended
	Unended   Outcome = "running"   // no end recorded
)

// OutcomeOf returns the outcome of an attempt that ended with err.
func OutcomeOf(err error) Outcome {
	switch executor.ClassOf(err) {
	case "":
		return Succeeded
	case executor.ClassTimeout:
		return TimedOut
	case executor.ClassSkip:
		return Skipped
	case executor.ClassCanceled:
		return Cancelled
	}
	return Failed
}

// Slice is one attempt on the timeline.
type Slice struct {
	Task    string // the task run's label, e.g. "transform[3]"
	Attempt int
	Start   time.Duration // from the timeline's origin
	End     time.Duration
	Outcome Outcome
	Error   string // the attempt's error text; empty on success
	Row     int    // the row within its lane: overlapping attempts get rows of their own
	// Abandoned says the attempt timed out softly and its work was not
	// known to have stopped (an *executor.TimeoutError with Stopped
	// false): it may have run on after End, for a time nobody measured.
	Abandoned bool
}

// Wait is the time between a failed attempt's end and the start of its
// retry: the retry delay (backoff) plus whatever the scheduler took.
type Wait struct {
	Task    string        // the task run's label
	Attempt int           // the retry's number: the wait follows attempt Attempt-1
	From    time.Duration // the end of attempt Attempt-1, from the origin
	To      time.Duration // the start of attempt Attempt
}

// Lane is where attempts ran: a worker slot, a process, a remote worker.
type Lane struct {
	Name   string
	Rows   int // how many rows its overlapping attempts need; at least 1
	Slices []Slice
}

// Timeline is a run's attempts, by lane. Lanes are sorted by name (numbers
// within names in numeric order, so "pool/10" follows "pool/9"); slices
// within a lane by start.
type Timeline struct {
	Origin time.Time     // the earliest attempt start
	Span   time.Duration // from Origin to the latest attempt end
	Lanes  []Lane
	Waits  []Wait // one per retry, in the order of the results and attempts

	// What the picture shows, for the SVG's title: empty fields are left
	// out. FromRun sets Flow, Run and Total; Executor is yours to set
	// ("pool, 4 workers"). A zero Total means Span.
	Flow, Run, Executor string
	Total               time.Duration
}

// DefaultLane names the lane of attempts whose executor did not say where
// they ran (the local executor runs them on the caller's goroutine).
const DefaultLane = "caller"

// FromResults builds the timeline of the attempts in results. Attempts
// without a start are left out; an attempt without an end is drawn up to
// the latest time seen, as Unended. An empty input gives an empty timeline.
func FromResults(results []task.Result) *Timeline {
	type rec struct {
		lane string
		a    task.Attempt
		run  string
	}
	type rawWait struct {
		task     string
		attempt  int
		from, to time.Time
	}
	var recs []rec
	var waits []rawWait
	var origin, last time.Time
	for _, r := range results {
		for k, a := range r.Attempts {
			if a.Start.IsZero() {
				continue
			}
			if k > 0 && !r.Attempts[k-1].End.IsZero() {
				waits = append(waits, rawWait{task: r.Task, attempt: a.N, from: r.Attempts[k-1].End, to: a.Start})
			}
			lane := a.Worker
			if lane == "" {
				lane = DefaultLane
			}
			recs = append(recs, rec{lane: lane, a: a, run: r.Task})
			if origin.IsZero() || a.Start.Before(origin) {
				origin = a.Start
			}
			for _, t := range []time.Time{a.Start, a.End} {
				if t.After(last) {
					last = t
				}
			}
		}
	}
	tl := &Timeline{Origin: origin}
	if len(recs) == 0 {
		return tl
	}
	tl.Span = last.Sub(origin)
	for _, w := range waits {
		tl.Waits = append(tl.Waits, Wait{Task: w.task, Attempt: w.attempt, From: w.from.Sub(origin), To: w.to.Sub(origin)})
	}
	byLane := map[string]*Lane{}
	for _, r := range recs {
		l := byLane[r.lane]
		if l == nil {
			l = &Lane{Name: r.lane}
			byLane[r.lane] = l
		}
		s := Slice{Task: r.run, Attempt: r.a.N, Start: r.a.Start.Sub(origin), Outcome: OutcomeOf(r.a.Err)}
		if r.a.End.IsZero() {
			s.End, s.Outcome = tl.Span, Unended
		} else {
			s.End = r.a.End.Sub(origin)
		}
		if r.a.Err != nil {
			s.Error = r.a.Err.Error()
			var te *executor.TimeoutError
			s.Abandoned = errors.As(r.a.Err, &te) && !te.Stopped
		}
		l.Slices = append(l.Slices, s)
	}
	for _, l := range byLane {
		slices.SortStableFunc(l.Slices, func(a, b Slice) int {
			return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End))
		})
		l.Rows = pack(l.Slices)
		tl.Lanes = append(tl.Lanes, *l)
	}
	slices.SortFunc(tl.Lanes, func(a, b Lane) int { return naturalCompare(a.Name, b.Name) })
	return tl
}

// pack gives each slice (sorted by start) the lowest row where it does not
// overlap the previous slice of that row, and returns the number of rows.
func pack(ss []Slice) int {
	var rowEnds []time.Duration
	for i := range ss {
		row := slices.IndexFunc(rowEnds, func(end time.Duration) bool { return end <= ss[i].Start })
		if row < 0 {
			row = len(rowEnds)
			rowEnds = append(rowEnds, 0)
		}
		rowEnds[row] = ss[i].End
		ss[i].Row = row
	}
	return max(len(rowEnds), 1)
}

// naturalCompare orders strings with runs of digits compared as numbers.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := a[:da], b[:db]
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// label is the text of a slice: "task" or "task #2" for later attempts.
func (s Slice) label() string {
	if s.Attempt > 1 {
		return fmt.Sprintf("%s #%d", s.Task, s.Attempt)
	}
	return s.Task
}
