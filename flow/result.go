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

	var errs []error
	switch {
	case r.storeErr != nil:
		res.State = task.Failed
		errs = append(errs, r.storeErr)
	case r.stopping && r.timeout != nil && context.Cause(r.ctx) == r.timeout:
		res.State = task.TimedOut
		errs = append(errs, r.timeout)
	case r.stopping:
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
// everything.
type ReportOptions struct {
	// OmitTimes leaves out the run id, durations and the run's duration,
	// for output that does not change from run to run (golden files,
	// examples).
	OmitTimes bool
}

// Report returns the text report of WriteReport with default options.
func (r *Result) Report() string {
	var b strings.Builder
	_ = r.WriteReport(&b, ReportOptions{})
	return b.String()
}

// WriteReport writes a report a terminal user reads at a glance: a header
// with the flow's state, one line per task run (label, state, attempts,
// duration, the first line of its error, or for a run that succeeded after
// failed attempts the last of their errors), and a count of tasks per
// state.
// A mapped node's attempts column shows its children's count, as "×N";
// attempts whose calls were delivered more than once (a cluster call taken
// over from a worker that died) are counted after it, as "1 (+1
// redelivered)".
func (r *Result) WriteReport(w io.Writer, opts ReportOptions) error {
	var b strings.Builder
	if opts.OmitTimes {
		fmt.Fprintf(&b, "flow %s: %v\n", r.Flow, r.State)
	} else {
		fmt.Fprintf(&b, "flow %s: %v in %v (run %s)\n", r.Flow, r.State, round(r.Duration()), r.RunID)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	if opts.OmitTimes {
		fmt.Fprintln(tw, "TASK\tSTATE\tATTEMPTS\tERROR")
	} else {
		fmt.Fprintln(tw, "TASK\tSTATE\tATTEMPTS\tDURATION\tERROR")
	}
	var counts [16]int
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
		msg := firstLine(t.Err)
		if t.Err == nil {
			for k := len(t.Attempts) - 1; k >= 0; k-- {
				if t.Attempts[k].Err != nil {
					msg = firstLine(fmt.Errorf("retried after: %w", t.Attempts[k].Err))
					break
				}
			}
		}
		label := t.Task
		if t.Index >= 0 {
			label = "  " + label
		}
		if opts.OmitTimes {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", label, t.State, attempts, msg)
		} else {
			took := "-" // never started
			if !t.Start.IsZero() {
				took = round(t.Duration()).String()
			}
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", label, t.State, attempts, took, msg)
		}
	}
	_ = tw.Flush()
	var sum []string
	for s, n := range counts {
		if n > 0 {
			sum = append(sum, fmt.Sprintf("%d %v", n, task.State(s)))
		}
	}
	fmt.Fprintf(&b, "%d task runs: %s\n", len(r.Tasks), strings.Join(sum, ", "))
	lines := strings.SplitAfter(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \n")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
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

// firstLine returns err's first line, cut to a width a terminal shows.
func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	const width = 120
	if utf8.RuneCountInString(s) > width {
		s = string([]rune(s)[:width-1]) + "…"
	}
	return s
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
