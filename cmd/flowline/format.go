package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowline-go/flowline/store"
)

// timeLayout is how times are shown: local time, to the second (the JSON
// output has them in full).
const timeLayout = "2006-01-02 15:04:05"

func showTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(timeLayout)
}

// showDuration rounds d to three significant figures or so: 840µs,
// 12.3ms, 1.23s, 3m12s.
func showDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func span(start, end time.Time) string {
	if start.IsZero() || end.IsZero() {
		return "-"
	}
	return showDuration(end.Sub(start))
}

// oneLine is an error message's first line, cut to n runes.
func oneLine(s string, n int) string {
	s, _, more := strings.Cut(s, "\n")
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if more {
		return s + " …"
	}
	return s
}

func errText(class, msg string) string {
	switch {
	case class == "" && msg == "":
		return ""
	case class == "":
		return msg
	}
	return class + ": " + msg
}

func requests(r store.Run) string {
	var out []string
	if !r.CancelRequested.IsZero() {
		out = append(out, "cancel requested")
	}
	if !r.RetryRequested.IsZero() {
		out = append(out, "retry requested")
	}
	return strings.Join(out, ", ")
}

func (c *cli) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// The JSON forms. Times are RFC 3339 with nanoseconds, omitted when zero;
// durations are in seconds; recorded values are the raw JSON when they
// are JSON (the default codec), else absent with their size.
type (
	jsonRun struct {
		ID              string          `json:"id"`
		Flow            string          `json:"flow"`
		FlowHash        string          `json:"flow_hash"`
		State           string          `json:"state"`
		ErrClass        string          `json:"error_class,omitempty"`
		ErrMessage      string          `json:"error,omitempty"`
		Params          json.RawMessage `json:"params,omitempty"`
		Owner           string          `json:"owner,omitempty"`
		LeaseExpires    *time.Time      `json:"lease_expires,omitempty"`
		Created         *time.Time      `json:"created,omitempty"`
		Updated         *time.Time      `json:"updated,omitempty"`
		Ended           *time.Time      `json:"ended,omitempty"`
		DurationSeconds *float64        `json:"duration_seconds,omitempty"`
		CancelRequested *time.Time      `json:"cancel_requested,omitempty"`
		RetryRequested  *time.Time      `json:"retry_requested,omitempty"`
	}
	jsonTaskRun struct {
		Label           string          `json:"label"`
		State           string          `json:"state"`
		Attempts        int             `json:"attempts"`
		Start           *time.Time      `json:"start,omitempty"`
		End             *time.Time      `json:"end,omitempty"`
		DurationSeconds *float64        `json:"duration_seconds,omitempty"`
		ErrClass        string          `json:"error_class,omitempty"`
		ErrMessage      string          `json:"error,omitempty"`
		CacheKey        string          `json:"cache_key,omitempty"`
		Value           json.RawMessage `json:"value,omitempty"`
		ValueBytes      int             `json:"value_bytes,omitempty"`
	}
	jsonAttempt struct {
		Label           string     `json:"label"`
		N               int        `json:"n"`
		State           string     `json:"state"`
		Start           *time.Time `json:"start,omitempty"`
		End             *time.Time `json:"end,omitempty"`
		DurationSeconds *float64   `json:"duration_seconds,omitempty"`
		ErrClass        string     `json:"error_class,omitempty"`
		ErrMessage      string     `json:"error,omitempty"`
		Worker          string     `json:"worker,omitempty"`
	}
	jsonCacheEntry struct {
		Key        string          `json:"key"`
		Created    *time.Time      `json:"created,omitempty"`
		Expires    *time.Time      `json:"expires,omitempty"`
		Value      json.RawMessage `json:"value,omitempty"`
		ValueBytes int             `json:"value_bytes"`
	}
)

func jt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func jd(start, end time.Time) *float64 {
	if start.IsZero() || end.IsZero() {
		return nil
	}
	s := end.Sub(start).Seconds()
	return &s
}

func rawJSON(b []byte) json.RawMessage {
	if len(b) > 0 && json.Valid(b) {
		return b
	}
	return nil
}

func toJSONRun(r store.Run) jsonRun {
	return jsonRun{ID: r.ID, Flow: r.Flow, FlowHash: r.FlowHash, State: r.State, ErrClass: r.ErrClass,
		ErrMessage: r.ErrMessage, Params: rawJSON(r.Params), Owner: r.Owner, LeaseExpires: jt(r.LeaseExpires),
		Created: jt(r.Created), Updated: jt(r.Updated), Ended: jt(r.Ended), DurationSeconds: jd(r.Created, r.Ended),
		CancelRequested: jt(r.CancelRequested), RetryRequested: jt(r.RetryRequested)}
}

func (c *cli) printRuns(runs []store.Run) error {
	if c.json {
		out := make([]jsonRun, 0, len(runs))
		for _, r := range runs {
			out = append(out, toJSONRun(r))
		}
		return c.printJSON(out)
	}
	if len(runs) == 0 {
		_, err := fmt.Fprintln(c.stdout, "no runs")
		return err
	}
	w := c.table()
	fmt.Fprintln(w, "RUN\tFLOW\tSTATE\tCREATED\tDURATION\tREQUESTS\tERROR")
	for _, r := range runs {
		d := "running"
		switch {
		case r.Finished():
			d = span(r.Created, r.Ended)
		case !driven(r):
			d = "not driven"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Flow, r.State, showTime(r.Created), d,
			requests(r), oneLine(errText(r.ErrClass, r.ErrMessage), 60))
	}
	return w.Flush()
}

func (c *cli) printRun(r store.Run, trs []store.TaskRun, as []store.Attempt) error {
	if c.json {
		out := struct {
			Run      jsonRun       `json:"run"`
			Tasks    []jsonTaskRun `json:"tasks"`
			Attempts []jsonAttempt `json:"attempts"`
		}{Run: toJSONRun(r), Tasks: []jsonTaskRun{}, Attempts: []jsonAttempt{}}
		for _, t := range trs {
			row := jsonTaskRun{Label: t.Label, State: t.State, Attempts: t.Attempts, Start: jt(t.Start), End: jt(t.End),
				DurationSeconds: jd(t.Start, t.End), ErrClass: t.ErrClass, ErrMessage: t.ErrMessage, CacheKey: t.CacheKey,
				Value: rawJSON(t.Value)}
			if row.Value == nil {
				row.ValueBytes = len(t.Value)
			}
			out.Tasks = append(out.Tasks, row)
		}
		for _, a := range as {
			out.Attempts = append(out.Attempts, jsonAttempt{Label: a.Label, N: a.N, State: a.State, Start: jt(a.Start),
				End: jt(a.End), DurationSeconds: jd(a.Start, a.End), ErrClass: a.ErrClass, ErrMessage: a.ErrMessage,
				Worker: a.Worker})
		}
		return c.printJSON(out)
	}
	w := c.table()
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(w, "%s\t%s\n", name, value)
		}
	}
	field("Run", r.ID)
	field("Flow", fmt.Sprintf("%s (hash %s)", r.Flow, shortHash(r.FlowHash)))
	field("State", r.State)
	field("Error", oneLine(errText(r.ErrClass, r.ErrMessage), 200))
	field("Created", showTime(r.Created))
	if r.Finished() {
		field("Ended", fmt.Sprintf("%s (took %s)", showTime(r.Ended), span(r.Created, r.Ended)))
	}
	switch {
	case r.Owner != "" && driven(r):
		field("Owner", fmt.Sprintf("%s (lease until %s)", r.Owner, showTime(r.LeaseExpires)))
	case r.Owner != "" && !r.Finished():
		field("Owner", fmt.Sprintf("%s (lease expired %s: no process drives the run; flow.Serve or ResumeExpired resumes it)",
			r.Owner, showTime(r.LeaseExpires)))
	case !r.Finished():
		field("Owner", "none: no process drives the run; flow.Serve or ResumeExpired resumes it")
	}
	if !r.CancelRequested.IsZero() {
		field("Requests", "cancel requested at "+showTime(r.CancelRequested))
	}
	if !r.RetryRequested.IsZero() {
		field("Requests", "retry requested at "+showTime(r.RetryRequested))
	}
	if len(r.Params) > 0 && string(r.Params) != "{}" {
		field("Params", oneLine(string(r.Params), 200))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	if len(trs) == 0 {
		_, err := fmt.Fprintln(c.stdout, "no task runs recorded")
		return err
	}
	w = c.table()
	fmt.Fprintln(w, "TASK\tSTATE\tATTEMPTS\tSTART\tDURATION\tERROR")
	for _, t := range trs {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", t.Label, t.State, t.Attempts, showTime(t.Start), span(t.Start, t.End),
			oneLine(errText(t.ErrClass, t.ErrMessage), 80))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(as) == 0 {
		return nil
	}
	fmt.Fprintln(c.stdout)
	w = c.table()
	fmt.Fprintln(w, "ATTEMPT\tSTATE\tSTART\tDURATION\tWORKER\tERROR")
	for _, a := range as {
		fmt.Fprintf(w, "%s #%d\t%s\t%s\t%s\t%s\t%s\n", a.Label, a.N, a.State, showTime(a.Start), span(a.Start, a.End),
			a.Worker, oneLine(errText(a.ErrClass, a.ErrMessage), 80))
	}
	return w.Flush()
}

// driven reports whether an unfinished run's lease is live: some process
// drives it (as far as this machine's clock can tell).
func driven(r store.Run) bool {
	return r.Owner != "" && r.LeaseExpires.After(time.Now())
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func (c *cli) printRequest(r store.Run, kind string, at time.Time, text string) error {
	if c.json {
		return c.printJSON(struct {
			Run       string     `json:"run"`
			Flow      string     `json:"flow"`
			State     string     `json:"state"`
			Request   string     `json:"request"`
			Requested *time.Time `json:"requested,omitempty"`
		}{r.ID, r.Flow, r.State, kind, jt(at)})
	}
	_, err := fmt.Fprint(c.stdout, text)
	return err
}

func (c *cli) printCache(es []store.CacheEntry) error {
	if c.json {
		out := make([]jsonCacheEntry, 0, len(es))
		for _, e := range es {
			out = append(out, jsonCacheEntry{Key: e.Key, Created: jt(e.Created), Expires: jt(e.Expires),
				Value: rawJSON(e.Value), ValueBytes: len(e.Value)})
		}
		return c.printJSON(out)
	}
	if len(es) == 0 {
		_, err := fmt.Fprintln(c.stdout, "no cache entries")
		return err
	}
	w := c.table()
	fmt.Fprintln(w, "KEY\tBYTES\tCREATED\tEXPIRES")
	for _, e := range es {
		exp := "never"
		if !e.Expires.IsZero() {
			exp = showTime(e.Expires)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", e.Key, len(e.Value), showTime(e.Created), exp)
	}
	return w.Flush()
}

func (c *cli) printInvalidated(prefix string, n int) error {
	if c.json {
		return c.printJSON(struct {
			Prefix  string `json:"prefix"`
			Deleted int    `json:"deleted"`
		}{prefix, n})
	}
	what := fmt.Sprintf("whose key starts with %q", prefix)
	if prefix == "" {
		what = "(every entry)"
	}
	_, err := fmt.Fprintf(c.stdout, "invalidated %d cache %s %s\n", n, plural(n, "entry", "entries"), what)
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
