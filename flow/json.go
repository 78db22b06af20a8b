package flow

import (
	"encoding/json"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/task"
)

// The JSON run record. Field names are part of the format that tools read;
// add fields, never rename them.
type jsonRecord struct {
	Flow       string        `json:"flow"`
	RunID      string        `json:"run_id"`
	State      task.State    `json:"state"`
	Error      string        `json:"error,omitempty"`
	Start      time.Time     `json:"start"`
	End        time.Time     `json:"end"`
	DurationNS time.Duration `json:"duration_ns"`
	Tasks      []jsonTask    `json:"tasks"`
}

type jsonTask struct {
	Task       string        `json:"task"`
	Node       string        `json:"node"`
	Index      *int          `json:"index,omitempty"`
	Mapped     bool          `json:"mapped,omitempty"`
	Children   int           `json:"children,omitempty"`
	RunID      string        `json:"run_id"`
	State      task.State    `json:"state"`
	Error      string        `json:"error,omitempty"`
	ErrorClass string        `json:"error_class,omitempty"`
	Start      *time.Time    `json:"start,omitempty"`
	End        *time.Time    `json:"end,omitempty"`
	DurationNS time.Duration `json:"duration_ns"`
	Attempts   []jsonAttempt `json:"attempts,omitempty"`
}

type jsonAttempt struct {
	N          int           `json:"n"`
	Start      time.Time     `json:"start"`
	End        time.Time     `json:"end"`
	DurationNS time.Duration `json:"duration_ns"`
	Error      string        `json:"error,omitempty"`
	ErrorClass string        `json:"error_class,omitempty"`
	Worker     string        `json:"worker,omitempty"`
	Deliveries int           `json:"deliveries,omitempty"`
}

func errText(err error) (string, string) {
	if err == nil {
		return "", ""
	}
	return err.Error(), string(executor.ClassOf(err))
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// MarshalJSON encodes the run as a record tools can read: the flow, the
// run id, the state by name, the error text, times (RFC 3339) and
// durations (nanoseconds), and per task run its label, node, mapped index,
// state, error and error class (see executor.Class), and attempts with
// start, end, error and worker. Task values are left out: they may be
// large or not encodable.
func (r *Result) MarshalJSON() ([]byte, error) {
	rec := jsonRecord{Flow: r.Flow, RunID: r.RunID, State: r.State, Start: r.Start, End: r.End,
		DurationNS: r.Duration(), Tasks: make([]jsonTask, len(r.Tasks))}
	rec.Error, _ = errText(r.Err)
	for i := range r.Tasks {
		t := &r.Tasks[i]
		jt := jsonTask{Task: t.Task, Node: t.Node(), Mapped: t.Mapped, Children: t.Children, RunID: t.RunID,
			State: t.State, Start: timePtr(t.Start), End: timePtr(t.End), DurationNS: t.Duration()}
		if t.Index >= 0 {
			jt.Index = &t.Index
		}
		jt.Error, jt.ErrorClass = errText(t.Err)
		for _, a := range t.Attempts {
			ja := jsonAttempt{N: a.N, Start: a.Start, End: a.End, DurationNS: a.End.Sub(a.Start), Worker: a.Worker, Deliveries: a.Deliveries}
			ja.Error, ja.ErrorClass = errText(a.Err)
			jt.Attempts = append(jt.Attempts, ja)
		}
		rec.Tasks[i] = jt
	}
	return json.Marshal(rec)
}
