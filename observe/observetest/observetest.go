// Package observetest holds a Recorder, an observe.Observer that keeps
// every event as a span-like record with W3C trace ids of its own making,
// for tests of flowline's hook and of integrations built on it. It is not
// a tracer: pick the nested otel module for that.
package observetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"

	"github.com/flowline-go/flowline/observe"
)

// Kind says what a Span records.
type Kind string

// The kinds of spans.
const (
	Flow    Kind = "flow"
	Task    Kind = "task"
	Attempt Kind = "attempt"
	Worker  Kind = "worker"
)

// Span is one recorded event pair. Trace, ID and Parent are lower-case hex
// (Parent is empty for a root); Ended is false until its end event came.
type Span struct {
	Kind   Kind
	Name   string // the flow's name, the task run's label, "label#n" for an attempt, the task for a worker call
	Trace  string
	ID     string
	Parent string
	Ended  bool

	Flow    observe.FlowRun    // for Flow, as the end event left it
	TaskRun observe.TaskRun    // for Task
	Attempt observe.Attempt    // for Attempt
	Call    observe.WorkerCall // for Worker
}

// Recorder is an observe.Observer that records spans. Its zero value is
// ready to use; it is safe for concurrent use.
type Recorder struct {
	observe.Nop
	mu    sync.Mutex
	spans []*Span
}

var _ observe.Observer = (*Recorder)(nil)

// Spans returns copies of the recorded spans in the order they started.
func (r *Recorder) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Span, len(r.spans))
	for i, s := range r.spans {
		out[i] = *s
	}
	return out
}

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (r *Recorder) add(s *Span) *Span {
	s.ID = newID(8)
	if s.Trace == "" {
		s.Trace = newID(16)
	}
	r.mu.Lock()
	r.spans = append(r.spans, s)
	r.mu.Unlock()
	return s
}

func (s *Span) traceParent() string { return "00-" + s.Trace + "-" + s.ID + "-01" }

// childOf returns a span whose parent is the traceparent tp, if valid.
func childOf(kind Kind, name, tp string) *Span {
	s := &Span{Kind: kind, Name: name}
	if trace, span, ok := observe.TraceIDs(tp); ok {
		s.Trace, s.Parent = trace, span
	}
	return s
}

func (r *Recorder) end(s *Span, fill func(*Span)) {
	r.mu.Lock()
	fill(s)
	s.Ended = true
	r.mu.Unlock()
}

// FlowStart implements observe.Observer: a resumed run's span is a child
// of the recorded context.
func (r *Recorder) FlowStart(_ context.Context, f *observe.FlowRun) {
	s := r.add(childOf(Flow, f.Flow, f.TraceParent))
	f.Data, f.TraceParent = s, s.traceParent()
}

// FlowEnd implements observe.Observer.
func (r *Recorder) FlowEnd(f *observe.FlowRun) {
	r.end(f.Data.(*Span), func(s *Span) { s.Flow = *f; s.Flow.Data = nil })
}

// TaskStart implements observe.Observer.
func (r *Recorder) TaskStart(t *observe.TaskRun) {
	parent := ""
	switch {
	case t.Parent != nil:
		parent = t.Parent.Data.(*Span).traceParent()
	case t.Flow != nil:
		parent = t.Flow.Data.(*Span).traceParent()
	}
	t.Data = r.add(childOf(Task, t.Label, parent))
}

// TaskEnd implements observe.Observer.
func (r *Recorder) TaskEnd(t *observe.TaskRun) {
	r.end(t.Data.(*Span), func(s *Span) {
		s.TaskRun = *t
		s.TaskRun.Data, s.TaskRun.Flow, s.TaskRun.Parent = nil, nil, nil
	})
}

// AttemptStart implements observe.Observer; the attempt's traceparent is
// its span's.
func (r *Recorder) AttemptStart(a *observe.Attempt) {
	ts := a.Task.Data.(*Span)
	s := r.add(childOf(Attempt, a.Task.Label+"#"+strconv.Itoa(a.N), ts.traceParent()))
	a.Data, a.TraceParent, a.TraceState = s, s.traceParent(), "observetest=1"
}

// AttemptEnd implements observe.Observer.
func (r *Recorder) AttemptEnd(a *observe.Attempt) {
	r.end(a.Data.(*Span), func(s *Span) { s.Attempt = *a; s.Attempt.Data, s.Attempt.Task = nil, nil })
}

// WorkerStart implements observe.Observer: the worker's span is a child
// of the caller's, and the task sees its traceparent.
func (r *Recorder) WorkerStart(ctx context.Context, c *observe.WorkerCall) context.Context {
	s := r.add(childOf(Worker, c.Task, c.TraceParent))
	c.Data, c.TraceParent = s, s.traceParent()
	return ctx
}

// WorkerEnd implements observe.Observer.
func (r *Recorder) WorkerEnd(c *observe.WorkerCall) {
	r.end(c.Data.(*Span), func(s *Span) { s.Call = *c; s.Call.Data = nil })
}
