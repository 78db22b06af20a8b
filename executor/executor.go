package executor

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/observe"
)

// Call is one attempt of one task: what every executor needs to run it, in
// process or out of it.
type Call struct {
	// Handler is the task. Required. In-process executors run it directly;
	// out-of-process executors send Handler.Name() and find the task in the
	// worker's Registry, then decode the result with Handler.
	Handler *Handler

	// Input is a value of the handler's input type, or Raw bytes in the
	// handler's codec. A nil Input is the zero value of the input type.
	Input any

	// RunID identifies the run this attempt belongs to (a flow run, or a
	// single task run); it is logged with every line the task writes and
	// keys deduplication in the cluster executor. Empty is allowed.
	RunID string

	// Attempt numbers the attempts of one task run from 1. Together with
	// RunID and the task's name it identifies the attempt: a result of
	// another attempt never completes this one. Zero is treated as 1.
	Attempt int

	// Limit bounds the call's run time, from the moment it starts running
	// (time spent queued does not count). Zero or less means no limit.
	Limit time.Duration

	// Grace is how long a hard executor lets the call's processes run
	// between SIGTERM and SIGKILL at its limit or cancellation, for
	// cooperative cleanup. Zero means the executor's own setting (none by
	// default for executor/subprocess: SIGKILL at the limit), negative
	// means none, positive is that grace period. During it the call's work
	// still runs until it returns: Go code that ignores its context keeps
	// running until SIGKILL. Soft executors ignore it.
	Grace time.Duration

	// Logger receives the task's log lines, with the task name, run id and
	// attempt attached (and trace_id and span_id with a Trace). Nil means
	// no logging.
	Logger hclog.Logger

	// Trace, when set, marks the call as observed (the task runner sets
	// it when the run has an observer): the executor records when the call
	// starts running (Future.Started), which costs a clock read on
	// executors that would not otherwise read it, and the call's W3C trace
	// context (Trace.Parent, Trace.State) travels with it to subprocess
	// and cluster workers, where the task's context carries it (CallInfo)
	// and its log lines carry trace_id and span_id. Nil means neither, at
	// no cost: a pointer keeps the Call small on the path of every call.
	Trace *Trace
}

// Trace is a call's W3C trace context (see package observe). A worker
// drops a Parent that observe.ParseTraceParent refuses, with its State,
// and a State that observe.ValidTraceState refuses. Empty fields mean
// none: a Trace with both empty only asks for the call's start time.
type Trace struct {
	Parent string // traceparent: "00-<trace id>-<span id>-<flags>"
	State  string // tracestate
}

// TraceParent returns the call's traceparent, or "" without a Trace.
func (c *Call) TraceParent() string {
	if c.Trace == nil {
		return ""
	}
	return c.Trace.Parent
}

// TraceState returns the call's tracestate, or "" without a Trace.
func (c *Call) TraceState() string {
	if c.Trace == nil {
		return ""
	}
	return c.Trace.State
}

// Name returns the task's name, or "" when Handler is nil.
func (c *Call) Name() string {
	if c.Handler == nil {
		return ""
	}
	return c.Handler.Name()
}

// String names the attempt as "task (run r, attempt n)", the form used in
// logs and in ShutdownError.
func (c *Call) String() string {
	return fmt.Sprintf("%s (run %s, attempt %d)", c.Name(), c.RunID, c.attempt())
}

// ID returns "run/task/attempt": a stable identity for deduplication.
func (c *Call) ID() string {
	return c.RunID + "/" + c.Name() + "/" + strconv.Itoa(c.attempt())
}

func (c *Call) attempt() int {
	if c.Attempt < 1 {
		return 1
	}
	return c.Attempt
}

// Identity returns what a running task can learn about its call, the value
// behind CallInfo.
func (c *Call) Identity() Identity {
	return Identity{Task: c.Name(), RunID: c.RunID, Attempt: c.attempt(),
		TraceParent: c.TraceParent(), TraceState: c.TraceState()}
}

// TimeoutHandler is the contract every executor keeps: run one call, with an
// optional time limit, and say how the limit is enforced. The guarantees
// (checked for every executor by package executortest) are:
//
//   - No limit (Limit <= 0): the call runs to completion; its result and
//     error come back unchanged.
//   - On time: a call that returns before its limit gives back its result
//     and error unchanged; in process the error keeps its identity, across
//     a process boundary its message and Class.
//   - Late: the error matches ErrTimeout and is a *TimeoutError with the
//     task, limit, elapsed time, enforcement and whether the work stopped.
//     A Soft handler returns it within a few milliseconds of the limit; a
//     Hard one once the work is dead, at most limit + grace later.
//   - The call's context carries the deadline; once it passes,
//     context.Cause(ctx) is the *TimeoutError.
//   - Cancelling the context given to Submit cancels the call; the error
//     matches context.Canceled, never ErrTimeout; a Hard handler kills the
//     process.
//   - A panic is a *PanicError; a task that calls runtime.Goexit is a
//     *PanicError matching ErrGoexit (where the call runs on the caller's
//     goroutine, as executor/local's calls without a limit do, Goexit ends
//     that goroutine, as in plain Go); the death of a worker process is a
//     *CrashError; none of them takes the caller's process down.
//   - A bad input, an unknown task or an unencodable result is an
//     *InputError, *UnknownTaskError or *OutputError, never a timeout. A
//     context.DeadlineExceeded that the task made itself (its own HTTP
//     client's deadline, say) is the task's failure, not a timeout: only
//     the executor's *TimeoutError is (see ClassOf).
//   - No call is ever answered with another call's result, whatever its
//     RunID (empty included) and however many calls of one task run at
//     once.
//
// # Late
//
// One rule decides between a result and a timeout, for every executor: the
// executor compares the moment it observes the task's return (the moment
// the result reaches the executor's own code: the worker goroutine, or the
// worker process's answer) with the call's start plus Limit, on the
// executor's clock. Observed at or after that deadline, the call is late
// and its answer is a *TimeoutError (with Stopped set, since the work has
// returned), even if the executor's timer has not fired yet. Observed
// before it, the answer is the task's own result and error, even if the
// timer fires while the result is being delivered. A result is never
// compared with the deadline twice, so the answer cannot flip.
//
// # Backpressure
//
// Submit waits for room while ctx allows, as errgroup.Group.Go does: an
// executor with a bounded queue blocks the caller until the call is
// accepted. If ctx ends first, Submit returns exactly ctx.Err()
// (context.Canceled or context.DeadlineExceeded, not the context's cause),
// as semaphore.Weighted.Acquire does, and the call is not accepted: Submit
// never fails with ErrQueueFull. Executors with a bounded queue also offer
// TrySubmit (see TrySubmitter), which fails at once with ErrQueueFull
// instead of waiting. A call given a ctx that has already ended may be
// accepted and answered with a *CanceledError, or refused with ctx.Err().
//
// Submit returns an error only if the call was not accepted: ErrClosed after
// Shutdown (also while it waits for room), the context's error when it ends
// while Submit waits for room, an *InputError for an input that cannot
// travel to where the call runs, or an error for a Call without a Handler.
// Everything that happens to an accepted call is reported by its Future,
// which is completed exactly once.
type TimeoutHandler interface {
	Submit(ctx context.Context, call Call) (*Future, error)
	// Enforcement says how this handler enforces limits.
	Enforcement() Enforcement
}

// TrySubmitter is implemented by executors with a bounded queue, next to
// the waiting Submit of TimeoutHandler, as errgroup.Group has TryGo next to
// Go. TrySubmit is Submit without waiting: when there is no room it fails
// at once with ErrQueueFull and the call is not accepted; otherwise it
// behaves exactly as Submit. Callers that must not block (a scheduler
// loop, say) use it, and treat ErrQueueFull as "no room yet", never as the
// call's failure.
type TrySubmitter interface {
	TrySubmit(ctx context.Context, call Call) (*Future, error)
}

// Executor is a TimeoutHandler that owns resources (goroutines, processes,
// connections) and reports what it is doing.
type Executor interface {
	TimeoutHandler

	// Shutdown stops intake (Submit fails with ErrClosed from then on) and
	// waits for every call and resource the executor owns. If ctx ends first
	// it returns a *ShutdownError naming the calls still running. Shutdown
	// may be called more than once; later calls wait again.
	Shutdown(ctx context.Context) error

	// Stats returns a snapshot of the executor's counters.
	Stats() Stats
}

// Stats are counters every executor reports. Counters only grow, except
// Running and Abandoned, which are gauges.
type Stats struct {
	Submitted uint64 // calls accepted by Submit
	Running   int64  // calls running now (including abandoned ones)
	Succeeded uint64 // calls that returned a nil error in time
	Failed    uint64 // calls that returned an error (not a timeout or a cancellation)
	TimedOut  uint64 // calls that overran their limit
	Canceled  uint64 // calls cancelled by their caller
	// Abandoned counts calls whose caller already has an answer (a timeout
	// or a cancellation) but whose work is still running: only soft
	// executors have any. It falls back as the abandoned work returns.
	Abandoned int64
}

// Runner is a TimeoutHandler with a faster way to run one call and wait
// for it than Submit followed by Future.Wait: Run uses it. Its Run(ctx,
// call) must answer exactly as Submit(ctx, call) followed by
// Wait(context.Background()) on the Future would (executor/subprocess
// reads the answer on the calling goroutine, without waking another one).
type Runner interface {
	TimeoutHandler
	Run(ctx context.Context, call Call) (any, error)
}

// Run submits call to h and waits for its result. It is the one-call form
// of the contract, like Prefect's timeout_handler: no flow to build. The
// call is cancelled when ctx is, and Run waits for the executor to report
// the cancellation, so a hard executor has killed the process when Run
// returns. When h is a Runner, Run calls its Run.
func Run(ctx context.Context, h TimeoutHandler, call Call) (any, error) {
	if r, ok := h.(Runner); ok {
		return r.Run(ctx, call)
	}
	f, err := h.Submit(ctx, call)
	if err != nil {
		return nil, err
	}
	return f.Wait(context.Background())
}

// Identity is what a running task can learn about its call.
type Identity struct {
	Task    string
	RunID   string
	Attempt int

	// TraceParent and TraceState are the call's W3C trace context
	// (Call.Trace), empty when it has none. In a worker process whose
	// observer made a span of its own (observe.Observer.WorkerStart), they
	// are that span's.
	TraceParent, TraceState string
}

type identityKey struct{}

// callContext carries a call's identity and logger: one allocation per
// call instead of the two of context.WithValue plus a separate value. It
// keeps the trace context by pointer, as Call does, so that calls without
// one do not carry two empty strings.
type callContext struct {
	context.Context
	task, run string
	attempt   int
	trace     *Trace
	logger    hclog.Logger
}

func newCallContext(parent context.Context, call *Call) callContext {
	return callContext{Context: parent, task: call.Name(), run: call.RunID, attempt: call.attempt(),
		trace: call.Trace, logger: call.Logger}
}

// allocCallContext is a new call context on the heap, its fields stored
// in place: building it in newCallContext's result and copying that into
// a zeroed allocation cost about 9 ns more per call (executor/local's
// SubmitFuture of a no-op, 126 against 117 ns).
func allocCallContext(parent context.Context, call *Call) *callContext {
	return &callContext{Context: parent, task: call.Name(), run: call.RunID, attempt: call.attempt(),
		trace: call.Trace, logger: call.Logger}
}

func (c *callContext) identity() Identity {
	id := Identity{Task: c.task, RunID: c.run, Attempt: c.attempt}
	if c.trace != nil {
		id.TraceParent, id.TraceState = c.trace.Parent, c.trace.State
	}
	return id
}

func (c *callContext) Value(key any) any {
	if key == (identityKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithCall returns a context carrying call's identity and logger, for
// executors to hand to the task. Executors that run the task in another
// process call it there, with a logger that forwards to the caller.
func WithCall(parent context.Context, call *Call) context.Context {
	return allocCallContext(parent, call)
}

// CallContexts makes call contexts, as WithCall does, for an executor's
// worker that makes one per call: it carves them out of blocks of 64, so a
// worker running calls of a different identity each (another task, run or
// attempt every time) makes one allocation per 64 calls instead of one
// per call (blocks grow from one context to 64 as it makes more). The
// zero value is ready to use. It is not safe for concurrent
// use: each worker has its own.
//
// A context it made stays valid for as long as it is referenced, exactly
// as one from WithCall: a task that keeps its context after it returns
// (in a goroutine of its own, say) sees its own identity there, never
// another call's. The cost of keeping one is its whole block (up to about
// 5 KiB), which also keeps the parent contexts and loggers of the other
// calls of that block reachable until the kept context is dropped.
type CallContexts struct {
	free  []callContext
	block int // the size of the last block
}

// callContextBlock is how many contexts CallContexts carves out of one
// allocation at most. Blocks start at one context and double, so a worker
// that makes a few contexts in its life (one of 10,000 workers running
// calls of one task, say) allocates no more than WithCall would.
const callContextBlock = 64

// WithCall returns a context carrying call's identity and logger, as the
// package-level WithCall does.
func (cs *CallContexts) WithCall(parent context.Context, call *Call) context.Context {
	if len(cs.free) == 0 {
		cs.block = min(max(1, 2*cs.block), callContextBlock)
		cs.free = make([]callContext, cs.block)
	}
	c := &cs.free[0]
	cs.free = cs.free[1:]
	*c = newCallContext(parent, call)
	return c
}

// Drop lets go of the rest of the current block; the next WithCall
// allocates a new one. Contexts already made are unaffected.
func (cs *CallContexts) Drop() { cs.free = nil }

// Prepare returns the Promise of an accepted call and the context to run it
// with: parent carrying the call's identity and logger, as WithCall gives.
// Both come from one allocation, which is why executors should prefer it to
// NewPromise plus WithCall on their hot path. The context stays valid after
// the Future completes.
func Prepare(parent context.Context, call *Call) (Promise, context.Context) {
	s := &prepared{ctx: newCallContext(parent, call)}
	return Promise{f: &s.future}, &s.ctx
}

// RunInline runs call on the calling goroutine and returns its completed
// Future, for executors that run a call where it is submitted. For a call
// with a Trace it records the start (Future.Started). A task that
// calls runtime.Goexit ends the calling goroutine and RunInline does not
// return (see Handler.Run); an executor that counts calls observes that
// with a deferred check of its own, as executor/local does. The Future
// and the call's context come from one allocation and the Future is never
// shared before it is complete, so no lock is taken.
func RunInline(parent context.Context, call *Call) *Future {
	s := &prepared{ctx: newCallContext(parent, call)}
	if call.Trace != nil {
		Promise{f: &s.future}.SetStarted(time.Now())
	}
	s.future.value, s.future.err = call.Handler.Run(&s.ctx, call.Input)
	s.future.state.Store(futureDone)
	return &s.future
}

// prepared is a call's Future and context, allocated together.
type prepared struct {
	future Future
	ctx    callContext
}

// CallInfo returns the identity of the call that ctx belongs to, and false
// outside a call.
func CallInfo(ctx context.Context) (Identity, bool) {
	c, ok := ctx.Value(identityKey{}).(*callContext)
	if !ok {
		return Identity{}, false
	}
	return c.identity(), true
}

// Logger returns the logger for the call that ctx belongs to, with "task",
// "run" and "attempt" attached, and "trace_id" and "span_id" (lower-case
// hex) when the call has a valid TraceParent, so a task's lines reach its
// caller's logger wherever it runs and can be found from its trace.
// Outside a call, or for a call without a logger, it returns a logger that
// discards everything; it never returns nil.
func Logger(ctx context.Context) hclog.Logger {
	c, ok := ctx.Value(identityKey{}).(*callContext)
	if !ok || c.logger == nil {
		return hclog.NewNullLogger()
	}
	if c.trace != nil {
		if traceID, spanID, ok := observe.TraceIDs(c.trace.Parent); ok {
			return c.logger.With("task", c.task, "run", c.run, "attempt", c.attempt,
				"trace_id", traceID, "span_id", spanID)
		}
	}
	return c.logger.With("task", c.task, "run", c.run, "attempt", c.attempt)
}

// WithTrace returns ctx with the trace context of its call replaced, for a
// worker whose observer made a span of its own (see
// observe.Observer.WorkerStart): CallInfo and Logger then report the new
// one. Outside a call it returns ctx unchanged.
func WithTrace(ctx context.Context, traceParent, traceState string) context.Context {
	c, ok := ctx.Value(identityKey{}).(*callContext)
	if !ok {
		return ctx
	}
	n := *c
	n.Context, n.trace = ctx, &Trace{Parent: traceParent, State: traceState}
	return &n
}
