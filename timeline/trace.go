package timeline

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// traceEvent is one event of the Trace Event Format.
type traceEvent struct {
	Name  string         `json:"name"`
	Cat   string         `json:"cat,omitempty"`
	Ph    string         `json:"ph"`
	Ts    float64        `json:"ts"` // microseconds
	Dur   float64        `json:"dur,omitempty"`
	Pid   int            `json:"pid"`
	Tid   int            `json:"tid"`
	Cname string         `json:"cname,omitempty"`
	Args  map[string]any `json:"args,omitempty"`
}

// traceColors are colour names of the trace viewer's palette.
var traceColors = map[Outcome]string{
	Succeeded: "good",
	Failed:    "terrible",
	TimedOut:  "bad",
	Skipped:   "grey",
	Cancelled: "black",
	Unended:   "generic_work",
}

// WriteTrace writes the timeline in the Trace Event Format (JSON), which
// chrome://tracing and ui.perfetto.dev open: one thread per lane row, one
// complete event per attempt, coloured by outcome, with the task, attempt,
// outcome and error as arguments.
func (tl *Timeline) WriteTrace(w io.Writer) error {
	events := []traceEvent{{Name: "process_name", Ph: "M", Pid: 1, Args: map[string]any{"name": "flowline run"}}}
	tid := 0
	for _, l := range tl.Lanes {
		first := tid + 1
		for row := range l.Rows {
			tid++
			name := l.Name
			if row > 0 {
				name = fmt.Sprintf("%s (%d)", l.Name, row+1)
			}
			events = append(events,
				traceEvent{Name: "thread_name", Ph: "M", Pid: 1, Tid: tid, Args: map[string]any{"name": name}},
				traceEvent{Name: "thread_sort_index", Ph: "M", Pid: 1, Tid: tid, Args: map[string]any{"sort_index": tid}})
		}
		for _, s := range l.Slices {
			args := map[string]any{"task": s.Task, "attempt": s.Attempt, "outcome": string(s.Outcome), "lane": l.Name}
			if s.Error != "" {
				args["error"] = s.Error
			}
			events = append(events, traceEvent{
				Name: s.label(), Cat: string(s.Outcome), Ph: "X", Pid: 1, Tid: first + s.Row,
				Ts: micros(s.Start), Dur: max(micros(s.End-s.Start), 0.001),
				Cname: traceColors[s.Outcome], Args: args,
			})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(struct {
		DisplayTimeUnit string       `json:"displayTimeUnit"`
		TraceEvents     []traceEvent `json:"traceEvents"`
	}{"ms", events})
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
