package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/flowline-go/flowline/task"
)

// TaskRun is one task run of a flow run: a node's, or a mapped child's.
// Its task.Result has the label (Task: the node's name, or "name[i]" for a
// child), the run id, the final state, the value, the error, every
// attempt (with start, end, error and worker) and the run's start and end.
//
// Its times are read on the scheduler's goroutine as it handles each
// event, not by the task: an attempt ends when its completion is handled.
// A run in memory reads the clock once per such step, so the attempt it
// begins next starts at the very time the last attempt ended: earlier
// than a reading of its own by what the scheduler did between them (its
// bookkeeping, the OnState hook, Convert and Combine functions, all of
// which must be quick). An attempt's own start and end are always two
// readings, with its call submitted between them. Those readings follow
// the monotonic clock from a time.Now reading taken at most a second
// before, so durations are the monotonic clock's, as time.Now's are, and
// after a step of the wall clock (a settimeofday, a resume from sleep) the
// wall times of a run's records lag it for up to a second. A durable run
// (RunOptions.Store) reads time.Now afresh every time.
//
// A mapped node has a TaskRun of its own, without attempts: its state and
// error sum up its children's (see Map), its Value is the gathered slice
// (with zero values for children that did not succeed), and its Start and
// End span the mapping.
type TaskRun struct {
	task.Result
	Index    int  // a mapped child's position in its parent's input; -1 for a node
	Mapped   bool // whether the node is made by Map or MapWith
	Children int  // a mapped node's number of children; 0 for others
}

// Node returns the name of the run's node: Task for a node's own run, the
// mapped node's name for a child.
func (t *TaskRun) Node() string {
	if t.Index < 0 {
		return t.Task
	}
	return t.Task[:strings.LastIndexByte(t.Task, '[')]
}

// Result is a finished flow run. It is immutable and safe for concurrent
// use.
type Result struct {
	Flow  string
	RunID string
	// State is the run's final state: TimedOut when the flow's Timeout
	// stopped it, Cancelled when its context did; otherwise, from the
	// reference tasks (by default the terminal ones): Failed if any ended
	// Failed, TimedOut or TriggerFailed, else Cancelled if any was
	// cancelled, else Skipped if all were skipped, else Success.
	State task.State
	// Err is nil when State is Success or Skipped. Otherwise it joins
	// (errors.Join) the reason the run was stopped (a *TimeoutError, or
	// the context's cause), then a *TaskError for every task run that
	// ended Failed or TimedOut, in Tasks order; when there are none, for
	// every reference task that did not succeed.
	Err   error
	Start time.Time
	End   time.Time
	// Tasks holds every task run, the nodes in a topological order
	// (creation order where edges allow), each mapped node followed by its
	// children.
	Tasks []TaskRun

	flow *Flow
	at   []int32 // node id -> index in Tasks; nil when they are equal
}

// index returns node id's index in Tasks.
func (r *Result) index(id int32) int {
	if r.at == nil {
		return int(id)
	}
	return int(r.at[id])
}

// Duration returns End - Start.
func (r *Result) Duration() time.Duration { return r.End.Sub(r.Start) }

// TaskResults returns each task run's task.Result, in Tasks order (mapped
// nodes, which make no attempts of their own, included), for what takes
// them: timeline.FromResults(res.TaskResults()) draws the run.
func (r *Result) TaskResults() []task.Result {
	out := make([]task.Result, len(r.Tasks))
	for i := range r.Tasks {
		out[i] = r.Tasks[i].Result
	}
	return out
}

// Task returns the task run labelled label: a node's name, or "name[i]"
// for a mapped child; false if there is none.
func (r *Result) Task(label string) (TaskRun, bool) {
	if id, ok := r.flow.lookup(label); ok {
		return r.Tasks[r.index(id)], true
	}
	open := strings.LastIndexByte(label, '[')
	if open < 0 || !strings.HasSuffix(label, "]") {
		return TaskRun{}, false
	}
	id, ok := r.flow.lookup(label[:open])
	k, err := strconv.Atoi(label[open+1 : len(label)-1])
	if !ok || err != nil || k < 0 || label != childLabel(label[:open], k) {
		return TaskRun{}, false
	}
	p := r.index(id)
	if k >= r.Tasks[p].Children {
		return TaskRun{}, false
	}
	return r.Tasks[p+1+k], true
}

// Value returns node n's result in res, and false if n's run did not end
// Success (or Cached) or n is not a node of res's flow. For a mapped node it is the
// children's results in order.
func Value[T any](res *Result, n *Node[T]) (T, bool) {
	var zero T
	if res == nil || n == nil || n.d.owner != res.flow.owner || int(n.d.id) >= len(res.flow.nodes) {
		return zero, false
	}
	tr := &res.Tasks[res.index(n.d.id)]
	if !tr.State.HasValue() {
		return zero, false
	}
	v, ok := tr.Value.(T)
	if !ok && tr.Value == nil {
		return zero, true // a nil pointer or interface result
	}
	return v, ok
}

// result assembles the run's Result once every unit is final.
func (r *run) result() *Result {
	f := r.f
	res := &Result{Flow: f.name, RunID: r.id, Start: r.start, End: time.Now(), flow: f}
	if f.sorted && len(r.recs) == len(f.nodes) {
		res.Tasks = r.recs // already in order: no copy
	} else {
		res.Tasks = make([]TaskRun, 0, len(r.recs))
		res.at = make([]int32, len(f.nodes))
		for _, id := range f.order {
			res.at[id] = int32(len(res.Tasks))
			res.Tasks = append(res.Tasks, r.recs[id])
			if r.recs[id].Children > 0 {
				m := r.children(id)
				res.Tasks = append(res.Tasks, r.recs[m.first:m.first+m.n]...)
			}
		}
	}
	r.recs = nil

	// The loop may never see ctx.Done(): the context can end every open
	// unit through the unit's own events (a wait for limits, a running
	// attempt the executor cancels) first. A task Cancelled under an ended
	// context says the run was stopped all the same. A run whose tasks all
	// finished right at the deadline is not.
	stopped := r.stopping || r.ctx.Err() != nil && anyCancelled(res.Tasks)
	var errs []error
	switch {
	case r.storeErr != nil:
		res.State = task.Failed
		errs = append(errs, r.storeErr)
	case stopped && r.timeout != nil && context.Cause(r.ctx) == r.timeout:
		res.State = task.TimedOut
		errs = append(errs, r.timeout)
	case stopped:
		res.State = task.Cancelled
		errs = append(errs, fmt.Errorf("flow %q: run cancelled: %w", f.name, context.Cause(r.ctx)))
	default:
		res.State = refState(res, f.refs)
	}
	if res.State.Successful() {
		return res
	}
	for i := range res.Tasks {
		t := &res.Tasks[i]
		if (t.State == task.Failed || t.State == task.TimedOut) && t.Children == 0 {
			errs = append(errs, &TaskError{Task: t.Task, State: t.State, Err: t.Err})
		}
	}
	if len(errs) == 0 {
		for _, id := range f.refs {
			if t := &res.Tasks[res.index(id)]; !t.State.Successful() {
				errs = append(errs, &TaskError{Task: t.Task, State: t.State, Err: t.Err})
			}
		}
	}
	res.Err = errors.Join(errs...)
	return res
}

// anyCancelled reports whether a task run ended Cancelled.
func anyCancelled(runs []TaskRun) bool {
	for i := range runs {
		if runs[i].State == task.Cancelled {
			return true
		}
	}
	return false
}

func refState(res *Result, refs []int32) task.State {
	var failed, cancelled, skipped bool
	all := true
	for _, id := range refs {
		s := res.Tasks[res.index(id)].State
		failed = failed || s.Failure()
		cancelled = cancelled || s == task.Cancelled
		skipped = skipped || s == task.Skipped
		all = all && s == task.Skipped
	}
	switch {
	case failed:
		return task.Failed
	case cancelled:
		return task.Cancelled
	case skipped && all:
		return task.Skipped
	}
	return task.Success
}

// ReportOptions configure Result.WriteReport. The zero value prints
// everything, 100 columns wide.
type ReportOptions struct {
	// OmitTimes leaves out the run id, durations and the run's duration,
	// for output that does not change from run to run (golden files,
	// examples).
	OmitTimes bool

	// Width is the number of columns the report fits in. An error that
	// fits after its task's row is printed there; one that would run past
	// Width, or that has more than one line, is printed in full on lines
	// of its own under the row, indented four spaces past its label, and wrapped at
	// Width (a word longer than a line is cut across lines, never
	// dropped). Only a task label longer than Width makes a row wider.
	// Zero or less means 100; the floor is 40.
	Width int
}

const (
	defaultReportWidth = 100
	minReportWidth     = 40
	reportIndent       = "    "
)

// Report returns the text report of WriteReport with default options. A
// nil Result, which Run returns when it fails before any task starts (its
// error then says why), gives a one-line report that says so.
func (r *Result) Report() string {
	var b strings.Builder
	_ = r.WriteReport(&b, ReportOptions{})
	return b.String()
}

// WriteReport writes a report a terminal user reads at a glance: a header
// with the flow's state, one row per task run (label, state, attempts,
// duration, its error, or for a run that succeeded after failed attempts
// the last of their errors), and a count of tasks per state. A mapped
// node's attempts column shows its children's count, as "×N"; attempts
// whose calls were delivered more than once (a cluster call taken over
// from a worker that died) are counted after it, as "1 (+1 redelivered)".
// Errors are never cut: see ReportOptions.Width. A nil Result writes one
// line that says no run started.
func (r *Result) WriteReport(w io.Writer, opts ReportOptions) error {
	if r == nil {
		_, err := io.WriteString(w, "no flow run: Run failed before any task started (see its error)\n")
		return err
	}
	width := opts.Width
	if width <= 0 {
		width = defaultReportWidth
	}
	width = max(width, minReportWidth)

	var b strings.Builder
	if opts.OmitTimes {
		fmt.Fprintf(&b, "flow %s: %v\n", r.Flow, r.State)
	} else {
		fmt.Fprintf(&b, "flow %s: %v in %v (run %s)\n", r.Flow, r.State, round(r.Duration()), r.RunID)
	}
	// The table without its errors: every row padded to the ERROR column.
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	if opts.OmitTimes {
		fmt.Fprintln(tw, "TASK\tSTATE\tATTEMPTS\tERROR")
	} else {
		fmt.Fprintln(tw, "TASK\tSTATE\tATTEMPTS\tDURATION\tERROR")
	}
	var counts [16]int
	msgs := make([]string, len(r.Tasks))
	for i := range r.Tasks {
		t := &r.Tasks[i]
		counts[t.State%16]++
		attempts := strconv.Itoa(len(t.Attempts))
		if extra := redeliveries(t.Attempts); extra > 0 {
			// Redeliveries are not attempts (the task runner did not
			// retry), but the caller should see them.
			attempts += fmt.Sprintf(" (+%d redelivered)", extra)
		}
		if t.Mapped {
			attempts = "×" + strconv.Itoa(t.Children)
		}
		if t.Err != nil {
			msgs[i] = t.Err.Error()
		} else {
			for k := len(t.Attempts) - 1; k >= 0; k-- {
				if t.Attempts[k].Err != nil {
					msgs[i] = "retried after: " + t.Attempts[k].Err.Error()
					break
				}
			}
		}
		label := t.Task
		if t.Index >= 0 {
			label = "  " + label
		}
		if opts.OmitTimes {
			fmt.Fprintf(tw, "%s\t%v\t%s\t\n", label, t.State, attempts)
		} else {
			took := "-" // never started
			if !t.Start.IsZero() {
				took = round(t.Duration()).String()
			}
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t\n", label, t.State, attempts, took)
		}
	}
	_ = tw.Flush()
	rows := strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")
	b.WriteString(strings.TrimRight(rows[0], " ") + "\n")
	for i, row := range rows[1:] {
		msg := msgs[i]
		switch {
		case msg == "":
			b.WriteString(strings.TrimRight(row, " "))
			b.WriteByte('\n')
		case !strings.Contains(msg, "\n") && utf8.RuneCountInString(row)+utf8.RuneCountInString(msg) <= width:
			b.WriteString(row + msg + "\n")
		default:
			b.WriteString(strings.TrimRight(row, " "))
			b.WriteByte('\n')
			indent := reportIndent
			if r.Tasks[i].Index >= 0 { // under a mapped child's label, which is indented
				indent += "  "
			}
			for _, l := range wrap(msg, width-len(indent)) {
				b.WriteString(strings.TrimRight(indent+l, " ") + "\n")
			}
		}
	}
	var sum []string
	for s, n := range counts {
		if n > 0 {
			sum = append(sum, fmt.Sprintf("%d %v", n, task.State(s)))
		}
	}
	fmt.Fprintf(&b, "%d task runs: %s\n", len(r.Tasks), strings.Join(sum, ", "))
	if !opts.OmitTimes {
		writeWaits(&b, r.Tasks)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeWaits sums up the task runs' waits for their limits, if any
// waited.
func writeWaits(b *strings.Builder, tasks []TaskRun) {
	var n int
	var all time.Duration
	longest := -1
	for i := range tasks {
		if w := tasks[i].Waited; w > 0 {
			n++
			all += w
			if longest < 0 || w > tasks[longest].Waited {
				longest = i
			}
		}
	}
	if n > 0 {
		fmt.Fprintf(b, "limits: %d task runs waited, %v in all (the longest %v: %s)\n",
			n, round(all), round(tasks[longest].Waited), tasks[longest].Task)
	}
}

// wrap breaks s into lines of at most width runes: at its own line breaks,
// then between words; a word longer than width is cut across lines. Runs
// of spaces between words become one.
func wrap(s string, width int) []string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		var line []rune
		for _, word := range strings.Fields(para) {
			wr := []rune(word)
			if len(line) > 0 && len(line)+1+len(wr) <= width {
				line = append(append(line, ' '), wr...)
				continue
			}
			if len(line) > 0 {
				out = append(out, string(line))
				line = line[:0]
			}
			for len(wr) > width {
				out = append(out, string(wr[:width]))
				wr = wr[width:]
			}
			line = append(line, wr...)
		}
		out = append(out, string(line))
	}
	return out
}

// round makes a duration short enough to read at a glance.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

func childLabel(name string, i int) string {
	return name + "[" + strconv.Itoa(i) + "]"
}

// redeliveries counts the deliveries of attempts' calls beyond the first.
func redeliveries(as []task.Attempt) int {
	n := 0
	for _, a := range as {
		if a.Deliveries > 1 {
			n += a.Deliveries - 1
		}
	}
	return n
}
