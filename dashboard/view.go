package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
	"github.com/flowline-go/flowline/timeline"
)

// runView is everything a run page shows, read from the store at one
// moment.
type runView struct {
	Run       store.Run
	Now       time.Time
	Duration  time.Duration // so far, for a run still going
	Params    string        // indented JSON, "" for none
	Flow      *flow.Flow    // nil: not given to the dashboard
	FlowNote  string        // why the graph is missing or may differ
	Tasks     []*taskRow    // nodes in the flow's order (mapped children inside their node)
	Counts    []stateCount  // task runs by state (mapped children counted, their node not)
	Attempts  int
	Graph     template.HTML // the flow's graph as SVG; "" without a flow
	Timeline  template.HTML // the attempts' timeline as SVG
	CanCancel bool
	CanRetry  bool
}

// taskRow is one row of the task table: a task run, or a mapped node with
// its children.
type taskRow struct {
	Label    string
	State    string
	Attempts []store.Attempt
	Start    time.Time
	End      time.Time
	ErrClass string
	ErrMsg   string
	CacheKey string
	Worker   string // the last attempt's
	Mapped   bool
	Children []*taskRow
	Counts   []stateCount // of the children
	Recorded bool         // the store has a record of it (else it has not started)
}

type stateCount struct {
	State string
	N     int
}

// loadRun reads run id with its task runs and attempts. A run that does
// not exist is store.ErrNotFound.
func (h *Handler) loadRun(ctx context.Context, id string) (*runView, error) {
	run, err := h.st.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	trs, err := h.st.TaskRuns(ctx, id)
	if err != nil {
		return nil, err
	}
	as, err := h.st.Attempts(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &runView{Run: run, Now: time.Now()}
	end := run.Ended
	if end.IsZero() {
		end = v.Now
	}
	v.Duration = end.Sub(run.Created)
	v.Params = prettyJSON(run.Params)
	v.CanCancel = canSteer && !run.Finished() && run.CancelRequested.IsZero()
	v.CanRetry = canSteer && store.Retryable(run.State, run.Finished()) && run.RetryRequested.IsZero()
	v.Attempts = len(as)

	if f := h.flows[run.Flow]; f != nil {
		v.Flow = f
		if run.FlowHash != "" && run.FlowHash != f.Hash() {
			v.FlowNote = "This run was recorded with another version of flow " + strconv.Quote(run.Flow) + ": the graph is of the version this service has."
		}
	} else {
		v.FlowNote = "The graph of flow " + strconv.Quote(run.Flow) + " is not shown: the dashboard was not given this flow (Options.Flows)."
	}
	v.Tasks = buildRows(v.Flow, trs, as)
	v.Counts = countStates(v.Tasks)
	if v.Flow != nil {
		var b bytes.Buffer
		drawGraph(&b, v.Flow.Graph(), v.Tasks, h.path("/runs/"+pathEscape(run.ID)))
		v.Graph = template.HTML(b.String()) // built by drawGraph, every text escaped
	}
	v.Timeline = template.HTML(runTimeline(run, trs, as, v.Now)) // from timeline.WriteSVG, every text escaped
	return v, nil
}

// buildRows makes the task table: the flow's nodes in its order when the
// flow is known, else the labels in the store's order; mapped children
// ("name[i]") go inside their node, in index order.
func buildRows(f *flow.Flow, trs []store.TaskRun, as []store.Attempt) []*taskRow {
	attempts := map[string][]store.Attempt{}
	for _, a := range as {
		attempts[a.Label] = append(attempts[a.Label], a)
	}
	byLabel := map[string]*taskRow{}
	row := func(label string) *taskRow {
		r := byLabel[label]
		if r == nil {
			r = &taskRow{Label: label, State: task.Pending.String()}
			byLabel[label] = r
		}
		return r
	}
	var order []string // of top-level rows
	listed := map[string]bool{}
	mapped := map[string]bool{}
	if f != nil {
		for _, n := range f.Graph() {
			order = append(order, n.Name)
			listed[n.Name] = true
			mapped[n.Name] = n.Mapped
			row(n.Name).Mapped = n.Mapped
		}
	}
	type child struct {
		parent string
		i      int
	}
	children := map[string][]child{}
	for _, tr := range trs {
		r := row(tr.Label)
		r.State, r.Start, r.End, r.ErrClass, r.ErrMsg, r.CacheKey, r.Recorded = tr.State, tr.Start, tr.End, tr.ErrClass, tr.ErrMessage, tr.CacheKey, true
		r.Attempts = attempts[tr.Label]
		if n := len(r.Attempts); n > 0 {
			r.Worker = r.Attempts[n-1].Worker
		}
		if parent, i, ok := splitChild(tr.Label); ok && (f == nil || mapped[parent]) {
			if f == nil {
				row(parent).Mapped = true
			}
			children[parent] = append(children[parent], child{parent, i})
			continue
		}
		if !listed[tr.Label] {
			listed[tr.Label] = true
			order = append(order, tr.Label)
		}
	}
	// Parents seen only through their children (unknown flow).
	for parent := range children {
		if !listed[parent] {
			listed[parent] = true
			order = append(order, parent)
		}
	}
	if f == nil {
		slices.Sort(order)
	}
	out := make([]*taskRow, 0, len(order))
	for _, label := range order {
		r := row(label)
		cs := children[label]
		slices.SortFunc(cs, func(a, b child) int { return a.i - b.i })
		for _, c := range cs {
			r.Children = append(r.Children, byLabel[c.parent+"["+strconv.Itoa(c.i)+"]"])
		}
		if r.Mapped {
			r.Counts = countStates(r.Children)
			if !r.Recorded || !isFinal(r.State) {
				r.State = mappedState(r.Children)
			}
			if len(r.Children) > 0 {
				// Its children's span: the node's own record is rewritten
				// when a restart runs some of them again.
				r.Start, r.End = span(r.Children)
			}
		}
		out = append(out, r)
	}
	return out
}

// splitChild splits "name[i]" into name and i.
func splitChild(label string) (string, int, bool) {
	k := strings.LastIndexByte(label, '[')
	if k <= 0 || !strings.HasSuffix(label, "]") {
		return "", 0, false
	}
	i, err := strconv.Atoi(label[k+1 : len(label)-1])
	if err != nil || i < 0 {
		return "", 0, false
	}
	return label[:k], i, true
}

func parseState(s string) (task.State, bool) {
	var st task.State
	if err := st.UnmarshalText([]byte(s)); err != nil {
		return task.Pending, false
	}
	return st, true
}

func isFinal(s string) bool {
	st, ok := parseState(s)
	return ok && st.Final()
}

// mappedState is the state of a mapped node whose own record is not
// final yet: Running once any child has started, else Pending.
func mappedState(cs []*taskRow) string {
	for _, c := range cs {
		if c.Recorded {
			return task.Running.String()
		}
	}
	return task.Pending.String()
}

func span(cs []*taskRow) (start, end time.Time) {
	done := len(cs) > 0
	for _, c := range cs {
		if !c.Start.IsZero() && (start.IsZero() || c.Start.Before(start)) {
			start = c.Start
		}
		if c.End.IsZero() {
			done = false
		} else if c.End.After(end) {
			end = c.End
		}
	}
	if !done {
		end = time.Time{}
	}
	return start, end
}

// stateOrder is the order states are counted in: what needs a look first.
var stateOrder = []string{"Failed", "TimedOut", "TriggerFailed", "Cancelled", "Running", "Retrying", "Waiting", "Success", "Cached", "Skipped", "Pending"}

func countStates(rows []*taskRow) []stateCount {
	n := map[string]int{}
	var add func(rs []*taskRow)
	add = func(rs []*taskRow) {
		for _, r := range rs {
			if r.Mapped && len(r.Children) > 0 {
				add(r.Children)
				continue
			}
			n[r.State]++
		}
	}
	add(rows)
	var out []stateCount
	for _, s := range stateOrder {
		if n[s] > 0 {
			out = append(out, stateCount{s, n[s]})
			delete(n, s)
		}
	}
	var rest []string
	for s := range n {
		rest = append(rest, s)
	}
	slices.Sort(rest)
	for _, s := range rest {
		out = append(out, stateCount{s, n[s]})
	}
	return out
}

// inFlight is the timeline lane of attempts that are running.
const inFlight = "running now"

// runTimeline draws the run's attempts with the timeline package.
func runTimeline(run store.Run, trs []store.TaskRun, as []store.Attempt, now time.Time) string {
	var results []task.Result
	idx := map[string]int{}
	for _, tr := range trs {
		idx[tr.Label] = len(results)
		results = append(results, task.Result{Task: tr.Label})
	}
	for _, a := range as {
		i, ok := idx[a.Label]
		if !ok {
			idx[a.Label] = len(results)
			i = len(results)
			results = append(results, task.Result{Task: a.Label})
		}
		var err error
		if a.ErrClass != "" || a.ErrMessage != "" {
			err = &executor.RemoteError{Task: a.Label, Class: executor.Class(a.ErrClass), Message: a.ErrMessage}
		}
		worker := a.Worker
		if worker == "" && a.End.IsZero() {
			worker = inFlight // the store learns where an attempt ran when it ends
		}
		results[i].Attempts = append(results[i].Attempts, task.Attempt{N: a.N, Start: a.Start, End: a.End, Err: err, Worker: worker})
	}
	tl := timeline.FromResults(results)
	// Attempts still running reach up to now (FromResults ends them at
	// the latest time it saw, and nothing starts after that, so no lane's
	// rows change).
	if !tl.Origin.IsZero() && run.Ended.IsZero() {
		if d := now.Sub(tl.Origin); d > tl.Span {
			for li := range tl.Lanes {
				for si := range tl.Lanes[li].Slices {
					if s := &tl.Lanes[li].Slices[si]; s.Outcome == timeline.Unended {
						s.End = d
					}
				}
			}
			tl.Span = d
		}
	}
	tl.Flow, tl.Run = run.Flow, run.ID
	end := run.Ended
	if end.IsZero() {
		end = now
	}
	tl.Total = end.Sub(run.Created)
	var b strings.Builder
	_ = tl.WriteSVG(&b) // a strings.Builder does not fail
	return b.String()
}

func prettyJSON(b []byte) string {
	if len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	if s := out.String(); s != "{}" && s != "null" {
		return s
	}
	return ""
}

// fmtDur prints a duration for people: 340ms, 12.3s, 3m05s, 2h03m.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
