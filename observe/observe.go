// Package observe is the small hook through which flowline reports what it
// does, for tracing and metrics: a flow run's, a task run's and an
// attempt's start and end, and a call's start and end in a worker process
// (subprocess or cluster) that ran it for another process. It also holds
// the W3C trace context (traceparent, tracestate) that travels with a call.
//
// Pick it to write an integration of your own; for OpenTelemetry use the
// nested module github.com/flowline-go/flowline/otel, which implements
// Observer with spans and metrics. The library itself imports no tracing
// or metrics package.
//
// An Observer is given to flow.RunOptions.Observer or task.RunOptions.Observer,
// and in a worker process to the executor.Registry the worker serves
// (Registry.SetObserver). Without one, nothing here costs more than a nil
// check per event.
//
// Every event is a pointer to a struct that the caller allocates for the
// observer and hands back at the matching end: the observer keeps what it
// needs (its span, say) in the struct's Data field between the two. The
// observer's methods run on flowline's scheduler goroutine (for flows, the
// goroutine that called Run, or a worker goroutine that drives the run's
// scheduler, one at a time: see flow.Flow.Run) or on a worker's
// goroutine: they must be quick, must not block and must not keep the
// struct's pointer after the end event. They are never called while flowline holds a lock.
package observe

import (
	"context"
	"reflect"
	"strings"
	"time"
)

// ExecutorName names an executor for metrics and spans: the last element
// of its type's package path ("pool" for a *pool.Executor), or the type's
// name for a type outside a package; "" for nil.
func ExecutorName(ex any) string {
	t := reflect.TypeOf(ex)
	if t == nil {
		return ""
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if p := t.PkgPath(); p != "" {
		return p[strings.LastIndexByte(p, '/')+1:]
	}
	return t.String()
}

// Observer receives flowline's events. Implementations embed Nop so that
// they keep compiling when events are added, and override what they need.
//
// For one flow run the order is: FlowStart; for each task run TaskStart,
// then for each of its attempts AttemptStart and AttemptEnd, then TaskEnd;
// FlowEnd last. A task run that ends without an attempt (skipped, cached,
// cancelled before it started) has TaskStart and TaskEnd at once. A mapped
// node is one TaskRun whose children are TaskRuns with Parent set to it.
type Observer interface {
	// FlowStart gets the context given to flow.Run (or Resume, Restart):
	// a span in it may be the run's parent. The observer must not keep it.
	FlowStart(ctx context.Context, f *FlowRun)
	FlowEnd(*FlowRun)
	TaskStart(*TaskRun)
	TaskEnd(*TaskRun)
	AttemptStart(*Attempt)
	AttemptEnd(*Attempt)
	// WorkerStart is called in a worker process before it runs a call
	// that came from another process; the context it returns (derived
	// from ctx) is the parent of the task's context. WorkerEnd follows
	// once the task has returned, on the same goroutine.
	WorkerStart(ctx context.Context, c *WorkerCall) context.Context
	WorkerEnd(*WorkerCall)
}

// Nop is an Observer that does nothing, to embed.
type Nop struct{}

var _ Observer = Nop{}

// FlowStart does nothing.
func (Nop) FlowStart(context.Context, *FlowRun) {}

// FlowEnd does nothing.
func (Nop) FlowEnd(*FlowRun) {}

// TaskStart does nothing.
func (Nop) TaskStart(*TaskRun) {}

// TaskEnd does nothing.
func (Nop) TaskEnd(*TaskRun) {}

// AttemptStart does nothing.
func (Nop) AttemptStart(*Attempt) {}

// AttemptEnd does nothing.
func (Nop) AttemptEnd(*Attempt) {}

// WorkerStart returns ctx.
func (Nop) WorkerStart(ctx context.Context, _ *WorkerCall) context.Context { return ctx }

// WorkerEnd does nothing.
func (Nop) WorkerEnd(*WorkerCall) {}

// FlowRun is one run of a flow, from FlowStart to FlowEnd.
type FlowRun struct {
	Flow  string // the flow's name
	RunID string
	Tasks int // the flow's nodes (a mapped node counts once)

	// Resumed is set for a durable run continued by flow.Resume,
	// ResumeExpired or flow.Restart.
	Resumed bool

	// TraceParent and TraceState are the run's W3C trace context. At
	// FlowStart they hold the context recorded for a resumed run, or are
	// empty; the observer sets them to the trace context of the run's own
	// span, which a durable run records in its store so that a resume
	// continues the same trace. A value that ParseTraceParent refuses is
	// not recorded.
	TraceParent, TraceState string

	Start time.Time
	End   time.Time // at FlowEnd

	// At FlowEnd: the flow's final state ("Success", "Failed", "Cancelled",
	// "Skipped", "TimedOut") and its error, nil unless it failed.
	State string
	Err   error

	// Data is the observer's own, from FlowStart to FlowEnd.
	Data any
}

// TaskRun is one task run: a task's attempts with retries, ending in one
// final state; or a mapped node, whose children are task runs.
type TaskRun struct {
	Flow   *FlowRun // the flow run; nil for a task run outside a flow (task.Run)
	Parent *TaskRun // for a mapped child, the mapped node; otherwise nil

	Task  string // the task's name
	Label string // its name in results: the task's name, or "name[i]" for a mapped child
	RunID string // the task run's id: the flow run's id + "/" + Label in a flow

	// Executor names the executor its attempts go to, as ExecutorName
	// does ("local", "pool", "subprocess", "cluster").
	Executor string

	// Mapped is set for a mapped node (no attempts of its own); Children
	// is how many children it has, known at TaskEnd.
	Mapped   bool
	Children int

	Start time.Time
	End   time.Time // at TaskEnd

	// At TaskEnd: the final state's name ("Success", "Failed", "TimedOut",
	// "Skipped", "TriggerFailed", "Cancelled", "Cached"), the run's error
	// (nil for Success and Cached), its error class (executor.ClassOf, ""
	// without an error) and the number of attempts it made in this process.
	State    string
	Err      error
	Class    string
	Attempts int

	Data any
}

// Attempt is one attempt of a task run: one executor call.
type Attempt struct {
	Task *TaskRun
	N    int // from 1 (after any prior attempts of a resumed run)

	// TraceParent and TraceState, set by the observer at AttemptStart,
	// travel with the call (executor.Call.Trace), to worker processes
	// too, where the task's context and log lines carry them.
	TraceParent, TraceState string

	Start time.Time // when it was submitted
	End   time.Time // at AttemptEnd: when the runner learned its outcome

	// Started, at AttemptEnd, is when the executor started running the
	// call (executor.Future.Started); zero when it did not say.
	Started time.Time

	// At AttemptEnd. Queued is the time from Start until the executor
	// started running the call, Running the time from then until End;
	// both are zero when the executor did not say when the call started
	// (a call refused by Submit, or cancelled while queued).
	Queued, Running time.Duration

	// At AttemptEnd: the attempt's error and its class (executor.ClassOf),
	// "" and nil on success. For a timeout, TimedOut is set and
	// Enforcement ("soft" or "hard") and Stopped come from the
	// *executor.TimeoutError; Abandoned means a soft timeout whose work was
	// not known to have stopped (it may still run, see executor.Stats).
	Err         error
	Class       string
	TimedOut    bool
	Enforcement string
	Stopped     bool
	Abandoned   bool

	Worker     string // where it ran, as the executor names it; may be empty
	Deliveries int    // executor.Future.Deliveries

	// Retry is set when the task run goes on with another attempt.
	Retry bool

	Data any
}

// WorkerCall is a call a worker process runs for another process.
type WorkerCall struct {
	Task    string
	RunID   string // the task run's id
	Attempt int
	Worker  string // the worker's name, as the executor names it

	// TraceParent and TraceState come from the caller (empty when the call
	// carries none; a value ParseTraceParent refuses is dropped on
	// arrival). WorkerStart may set them to the context of a span of its
	// own, a child of the caller's: the task's context and log lines then
	// carry that one.
	TraceParent, TraceState string

	Start time.Time
	End   time.Time // at WorkerEnd

	// At WorkerEnd: what the task returned (or the timeout that ended
	// it) and its class, "" and nil on success.
	Err   error
	Class string

	Data any
}
