package task

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/observe"
)

// RunOptions configure one task run. The zero value is ready to use.
type RunOptions struct {
	// RunID identifies the run in logs, hooks and results, and keys
	// deduplication on the cluster executor. Empty means a random id.
	RunID string

	// Label names the run in results, reports and hooks; empty means the
	// task's name. The flow package labels mapped children "name[i]". The
	// executor always sees the task's registered name.
	Label string

	// Logger receives the task's log lines (task.Logger in task code) and
	// the runner's retry messages. Nil means no logging.
	Logger hclog.Logger

	// OnState is called at every state change of the run, on the goroutine
	// that drives the run. It must be quick and must not block. Nil means
	// no hook.
	OnState func(Change)

	// Prior are attempts of this task run made before (by a process that
	// crashed, or by a run being restarted), as recorded in a store: they
	// are kept at the head of Result.Attempts, and this run's first
	// attempt is numbered after the last of them. The retry budget
	// (Options.MaxRetries) counts only this run's own attempts.
	Prior []Attempt

	// Observer, when set, is told of the run's start and end and of each
	// attempt's (see package observe), on the goroutine that drives the
	// run, and the run's calls carry the trace context it gives each
	// attempt and ask the executor for their start time (executor.Call.Trace).
	// Nil means none, at the cost of a
	// nil check per event.
	Observer observe.Observer

	// ObserveAs is the observe.TaskRun the Observer is given, for a
	// caller that links task runs to a flow run (the flow package sets
	// its Flow and Parent); the runner fills in the rest. Nil means a new
	// one. Only with Observer.
	ObserveAs *observe.TaskRun

	// Attempts, when its capacity is not zero, is where the run records
	// its attempts (Result.Attempts uses its storage) while they fit, for
	// a scheduler that allocates the attempt records of many runs at once;
	// its length is ignored and its elements are overwritten. Nil means
	// the run allocates its own.
	Attempts []Attempt

	// Clock, when set, is where the run reads the time: its attempts'
	// starts and ends, its state changes and its waits. Nil means
	// time.Now. It is called on the goroutine that drives the run, and
	// its readings must not go backwards (time.Now's, which carry a
	// monotonic reading, do not), or a Duration may come out negative. A
	// scheduler that drives many runs can hand them a clock that reuses
	// one reading for what it does in one step: package flow does, so
	// that a task run's end and the start of the next run it begins
	// share one reading.
	Clock func() time.Time
}

// Change is one state change of a task run, as OnState sees it.
type Change struct {
	Task    string // the run's label
	RunID   string
	Attempt int // the attempt the change belongs to; 0 before the first, and always for a mapped node, which makes none of its own
	From    State
	To      State
	Err     error // the attempt's error, for Retrying and the final failures
	Time    time.Time
	// Note says, for a change to Waiting, what the attempt waits for: the
	// limit, the key and its position in the queue (limit.Wait.String).
	Note string
}

// Attempt records one attempt of a task run.
type Attempt struct {
	N      int // from 1
	Start  time.Time
	End    time.Time
	Err    error
	Worker string // where it ran, as the executor names it; may be empty
	// Deliveries is how many times the executor delivered the attempt's
	// call (executor.Future.Deliveries): 2 or more for a cluster call
	// redelivered after its worker died; 0 where the executor does not
	// count deliveries.
	Deliveries int
}

// Result records a finished (or unfinished) task run.
type Result struct {
	Task     string // the run's label
	RunID    string
	State    State
	Value    any   // the task's result, for Success
	Err      error // why the run did not succeed; nil for Success
	Attempts []Attempt
	Start    time.Time // when the first attempt started; zero if none did
	End      time.Time // when the run reached its final state
	// Waited is the time the run's attempts waited for their limits
	// (Options.Limits), in all.
	Waited time.Duration
}

// Duration returns End - Start, or zero for a run that never started.
func (r Result) Duration() time.Duration {
	if r.Start.IsZero() || r.End.IsZero() {
		return 0
	}
	return r.End.Sub(r.Start)
}

// Runner is the task runner: one task run as a state machine. It decides
// what each attempt's outcome means (success, a retry after a backoff
// delay, or a final state) and records attempts, but it does no waiting
// itself, so that a scheduler can drive thousands of runs from one
// goroutine. Run drives one Runner to its end; most programs use Run or
// Task.Run. A Runner is not safe for concurrent use.
//
// Every attempt has its own number. A Runner only accepts the outcome of
// its current attempt: the late result of an attempt that was already given
// up on can never complete a later one.
type Runner struct {
	spec    Spec
	pol     policy // of the task's options
	ownPol  bool   // pol is a *Task's: it never changes, so a Reset for the same task keeps it
	input   any
	onState func(Change) // RunOptions.OnState
	logger  hclog.Logger // RunOptions.Logger; the run's id is in res
	state   State
	attempt int // current attempt, 0 before Start
	first   int // the number of the first attempt this Runner makes
	res     Result
	// waitFrom is the state Wait left (Pending or Retrying), since when.
	waitFrom  State
	waitSince time.Time

	o *observed // nil without an observer: one word in every Runner

	clock func() time.Time // RunOptions.Clock
}

// now reads the run's clock.
func (r *Runner) now() time.Time {
	if r.clock != nil {
		return r.clock()
	}
	return time.Now()
}

// observed is a Runner's state for its observer: the task run's event,
// whether TaskStart was called, the current attempt's event and when the
// executor started it.
type observed struct {
	obs     observe.Observer
	ot      *observe.TaskRun
	oa      *observe.Attempt
	ow      *observe.Wait // the wait under way, for an observe.WaitObserver
	began   bool
	started time.Time
}

// NewRunner returns a Pending run of spec on input.
func NewRunner(spec Spec, input any, opts RunOptions) *Runner {
	if spec == nil {
		panic("task: NewRunner with a nil task")
	}
	r := &Runner{}
	r.init(spec, input, &opts)
	return r
}

// Reset makes r a new Pending run of spec on input, as NewRunner would,
// reusing r's memory: for a scheduler that drives many runs one after
// another. The run r was (its Result, taken with Take or Result) is not
// affected. It panics if spec is nil.
func (r *Runner) Reset(spec Spec, input any, opts RunOptions) {
	if spec == nil {
		panic("task: Runner.Reset with a nil task")
	}
	r.init(spec, input, &opts)
}

// init takes opts by pointer (its callers' own copy, which it changes) to
// spare a copy of it for each run a scheduler resets a Runner for.
func (r *Runner) init(spec Spec, input any, opts *RunOptions) {
	if opts.RunID == "" {
		opts.RunID = newRunID()
	}
	if opts.Label == "" {
		opts.Label = spec.Name()
	}
	pol, own := r.pol, r.ownPol && r.spec == spec
	if !own {
		pol, own = policyOf(spec)
	}
	// Field by field, not *r = Runner{...}: a whole-struct store into
	// the heap goes through typedmemmove, whose bulk write barrier walks
	// every pointer word of the Runner while the collector marks.
	r.spec, r.pol, r.ownPol, r.input = spec, pol, own, input
	r.onState, r.logger, r.clock, r.o = opts.OnState, opts.Logger, opts.Clock, nil
	r.state, r.attempt, r.first = 0, 0, 0
	r.waitFrom, r.waitSince = 0, time.Time{}
	r.res.Task, r.res.RunID, r.res.State = opts.Label, opts.RunID, 0
	r.res.Value, r.res.Err, r.res.Attempts = nil, nil, nil
	r.res.Start, r.res.End, r.res.Waited = time.Time{}, time.Time{}, 0
	if cap(opts.Attempts) > 0 {
		r.res.Attempts = opts.Attempts[:0]
	}
	if n := len(opts.Prior); n > 0 {
		r.res.Attempts = append(r.res.Attempts, opts.Prior...)
		r.attempt = opts.Prior[n-1].N
		r.res.Start = opts.Prior[0].Start
	}
	r.first = r.attempt + 1
	if opts.Observer != nil {
		o := &observed{obs: opts.Observer, ot: opts.ObserveAs}
		if o.ot == nil {
			o.ot = &observe.TaskRun{}
		}
		o.ot.Task, o.ot.Label, o.ot.RunID = spec.Name(), opts.Label, opts.RunID
		r.o = o
	}
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// State returns the run's current state.
func (r *Runner) State() State { return r.state }

// Attempt returns the current attempt's number: 0 before Start, or the
// last prior attempt's number for a run with RunOptions.Prior.
func (r *Runner) Attempt() int { return r.attempt }

// Result returns the run's record so far; it is complete once the state is
// final.
func (r *Runner) Result() Result {
	res := r.res
	res.Attempts = append([]Attempt(nil), r.res.Attempts...)
	return res
}

// Start begins the first attempt and returns the call to submit. It panics
// if the run was already started: that is a programming error.
func (r *Runner) Start() (call executor.Call) {
	if r.state != Pending && (r.state != Waiting || r.waitFrom != Pending) {
		panic("task: Runner.Start on a run that is " + r.state.String())
	}
	r.begin(&call)
	return call
}

// Retry begins the next attempt after a delay that AttemptDone asked for,
// and returns the call to submit. It panics unless the run is Retrying.
func (r *Runner) Retry() (call executor.Call) {
	if r.state != Retrying && (r.state != Waiting || r.waitFrom != Retrying) {
		panic("task: Runner.Retry on a run that is " + r.state.String())
	}
	r.begin(&call)
	return call
}

// Rejoin makes the last of RunOptions.Prior the current attempt again,
// Running, and returns its call, with the attempt's original number: for
// a resumed run to collect the result of an attempt that was in flight
// when the process before it died (see executor.Collector) instead of
// starting a new one. The rejoined attempt counts against the retry
// budget as this run's first. Rejoin panics unless Rejoinable.
func (r *Runner) Rejoin() (call executor.Call) {
	if !r.Rejoinable() {
		panic("task: Runner.Rejoin without an unended prior attempt on a run that is " + r.state.String())
	}
	now := r.now()
	if r.state == Waiting {
		r.res.Waited += now.Sub(r.waitSince)
	}
	r.first = r.attempt
	r.change(Running, nil, now)
	r.call(&call, now)
	return call
}

// Rejoinable reports whether the run has not started (Pending, or Waiting
// before its first attempt) and its last prior attempt did not end, which
// Rejoin can make current again.
func (r *Runner) Rejoinable() bool {
	n := len(r.res.Attempts)
	fresh := r.state == Pending || r.state == Waiting && r.waitFrom == Pending
	return fresh && n > 0 && r.res.Attempts[n-1].End.IsZero()
}

// Next begins the next attempt of a Pending, Retrying or Waiting run, as
// Start or Retry would. It panics on a run in any other state (Running,
// or final).
func (r *Runner) Next() (call executor.Call) {
	if r.state != Pending && r.state != Retrying && r.state != Waiting {
		panic("task: Runner.Next on a run that is " + r.state.String())
	}
	r.begin(&call)
	return call
}

// Wait moves a Pending or Retrying run to Waiting: its next attempt waits
// for the task's limits, w says for what (Change.Note has w.String(); an
// observe.WaitObserver gets the wait). Start or Retry (or Next) then
// begins the attempt, and the wait is added to Result.Waited. It panics
// on a run in any other state.
func (r *Runner) Wait(w limit.Wait) {
	if r.state != Pending && r.state != Retrying {
		panic("task: Runner.Wait on a run that is " + r.state.String())
	}
	r.waitFrom, r.waitSince = r.state, r.now()
	from := r.state
	r.state = Waiting
	if r.onState != nil {
		r.onState(Change{Task: r.res.Task, RunID: r.res.RunID, Attempt: r.attempt,
			From: from, To: Waiting, Time: r.waitSince, Note: w.String()})
	}
	if r.o != nil {
		if wo, ok := r.o.obs.(observe.WaitObserver); ok {
			r.observeStart(r.waitSince)
			r.o.ow = &observe.Wait{Task: r.o.ot, Attempt: r.attempt + 1, Limit: w.Limit, Key: w.Key,
				Rate: w.Rate, Position: w.Position, Start: r.waitSince}
			wo.WaitStart(r.o.ow)
		}
	}
}

// waitEnd reports the end of a wait to the observer.
func (r *Runner) waitEnd(now time.Time, granted bool) {
	if r.o == nil || r.o.ow == nil {
		return
	}
	w := r.o.ow
	r.o.ow = nil
	w.End, w.Granted = now, granted
	r.o.obs.(observe.WaitObserver).WaitEnd(w)
}

// begin starts the next attempt and fills in its call. The call is
// written in place, here and in call, into the result of Start, Retry or
// Next: returned from one function to the next, its 88 bytes were copied
// at each.
func (r *Runner) begin(call *executor.Call) {
	now := r.now()
	if r.state == Waiting {
		r.res.Waited += now.Sub(r.waitSince)
		r.waitEnd(now, true)
	}
	r.attempt++
	if r.res.Start.IsZero() {
		r.res.Start = now
	}
	if n := len(r.res.Attempts); n < cap(r.res.Attempts) {
		// In place, field by field, as in init.
		r.res.Attempts = r.res.Attempts[:n+1]
		a := &r.res.Attempts[n]
		a.N, a.Start, a.End, a.Err, a.Worker, a.Deliveries = r.attempt, now, time.Time{}, nil, "", 0
	} else {
		r.res.Attempts = append(r.res.Attempts, Attempt{N: r.attempt, Start: now})
	}
	r.change(Running, nil, now)
	r.call(call, now)
}

// call fills in the current attempt's call, which starts at now; call is
// the zero Call.
func (r *Runner) call(call *executor.Call, now time.Time) {
	call.Handler = r.spec.Handler()
	call.Input = r.input
	call.RunID = r.res.RunID
	call.Attempt = r.attempt
	call.Limit = r.pol.timeout
	call.Grace = r.pol.grace
	call.Logger = r.logger
	if r.o != nil {
		call.Trace = r.observeAttempt(now)
	}
}

// observeAttempt reports the start of the task run (at its first attempt)
// and of the attempt, and returns the attempt's trace context for its call
// (a result, not through a pointer to the call: the call stays in its
// result slot).
func (r *Runner) observeAttempt(now time.Time) *executor.Trace {
	o := r.o
	r.observeStart(now)
	o.started = time.Time{}
	o.oa = &observe.Attempt{Task: o.ot, N: r.attempt, Start: now}
	o.obs.AttemptStart(o.oa)
	tp, ts := observe.Clean(o.oa.TraceParent, o.oa.TraceState)
	return &executor.Trace{Parent: tp, State: ts}
}

func (r *Runner) observeStart(now time.Time) {
	if o := r.o; !o.began {
		o.began = true
		o.ot.Start = now
		o.obs.TaskStart(o.ot)
	}
}

// AttemptStarted records when the executor started running attempt n's
// call (executor.Future.Started), for the observer; call it before
// AttemptDone. It is ignored for an attempt other than the current
// running one, and without an observer.
func (r *Runner) AttemptStarted(n int, at time.Time) {
	if r.o == nil || n != r.attempt || r.state != Running {
		return
	}
	r.o.started = at
}

// observeAttemptEnd reports the end of the current attempt.
func (r *Runner) observeAttemptEnd(a *Attempt, retry bool) {
	o := r.o
	oa := o.oa
	if oa == nil {
		return
	}
	o.oa = nil
	oa.End, oa.Err, oa.Worker, oa.Deliveries, oa.Retry = a.End, a.Err, a.Worker, a.Deliveries, retry
	if !o.started.IsZero() {
		oa.Started = o.started
		oa.Queued, oa.Running = max(o.started.Sub(oa.Start), 0), max(a.End.Sub(o.started), 0)
	}
	if a.Err != nil {
		oa.Class = string(executor.ClassOf(a.Err))
		var te *executor.TimeoutError
		if errors.As(a.Err, &te) {
			oa.TimedOut, oa.Enforcement, oa.Stopped = true, te.Enforcement.String(), te.Stopped
			oa.Abandoned = te.Enforcement == executor.Soft && !te.Stopped
		}
	}
	o.obs.AttemptEnd(oa)
}

// AttemptDone records the outcome of attempt n: its value and error as the
// executor's Future gave them (or Submit's error), and where it ran. If the
// run goes on, it returns again = true and the delay to wait before Retry.
// Otherwise the run is final and Result has its outcome.
//
// The outcome of any other attempt than the current one is ignored (again
// is false and nothing changes), as is any outcome once the run is final.
// AttemptDeliveries records how many times the executor delivered attempt
// n's call (executor.Future.Deliveries); call it before AttemptDone. It is
// ignored for an attempt other than the current running one.
func (r *Runner) AttemptDeliveries(n, deliveries int) {
	if n != r.attempt || r.state != Running || len(r.res.Attempts) == 0 {
		return
	}
	r.res.Attempts[len(r.res.Attempts)-1].Deliveries = deliveries
}

func (r *Runner) AttemptDone(n int, value any, err error, worker string) (delay time.Duration, again bool) {
	if n != r.attempt || r.state != Running {
		return 0, false
	}
	now := r.now()
	a := &r.res.Attempts[len(r.res.Attempts)-1]
	a.End, a.Err, a.Worker = now, err, worker
	if err == nil {
		r.res.Value = value
		if r.o != nil {
			r.observeAttemptEnd(a, false)
		}
		r.finish(Success, nil, now)
		return 0, false
	}
	class := executor.ClassOf(err)
	again = class != executor.ClassSkip && class != executor.ClassCanceled && r.retryable(class, err)
	if r.o != nil {
		r.observeAttemptEnd(a, again)
	}
	switch class {
	case executor.ClassSkip:
		r.finish(Skipped, err, now)
		return 0, false
	case executor.ClassCanceled:
		r.finish(Cancelled, err, now)
		return 0, false
	}
	if again {
		delay = r.pol.retryDelay(r.attempt)
		r.debugLogger().Debug("attempt failed; retrying", "task", r.res.Task, "run", r.res.RunID,
			"attempt", r.attempt, "delay", delay, "error", err)
		r.change(Retrying, err, now)
		return delay, true
	}
	if class == executor.ClassTimeout {
		r.finish(TimedOut, err, now)
	} else {
		r.finish(Failed, err, now)
	}
	return 0, false
}

// retryable reports whether a failed attempt is tried again.
func (r *Runner) retryable(class executor.Class, err error) bool {
	if r.attempt-r.first+1 > max(r.pol.maxRetries, 0) {
		return false
	}
	switch class {
	case executor.ClassFailure, executor.ClassTimeout, executor.ClassPanic, executor.ClassCrash:
	default:
		return false
	}
	if errors.Is(err, executor.ErrClosed) {
		return false
	}
	return r.pol.retryIf == nil || r.pol.retryIf(err)
}

// End ends a run that has not reached a final state, without (further)
// attempts: Skipped or TriggerFailed for a run that never starts, Failed
// for a run whose input could not be made (err says why; no attempt is
// recorded), Cancelled for a run whose context ended (while Pending, or
// while Retrying; a Running attempt learns of the cancellation from its
// executor). End does nothing on a final run, and panics for any other
// state, or for Failed on a run that has started.
func (r *Runner) End(state State, err error) {
	switch state {
	case Skipped, TriggerFailed, Cancelled:
	case Failed:
		if r.state != Pending && !r.state.Final() && (r.state != Waiting || r.waitFrom != Pending) {
			panic("task: Runner.End with state Failed on a run that is " + r.state.String())
		}
	default:
		panic("task: Runner.End with state " + state.String())
	}
	if r.state.Final() {
		return
	}
	now := r.now()
	if r.state == Running {
		a := &r.res.Attempts[len(r.res.Attempts)-1]
		a.End, a.Err = now, err
		if r.o != nil {
			r.observeAttemptEnd(a, false)
		}
	}
	r.finish(state, err, now)
}

// Cached ends a Pending run Cached with value, a result found in the
// cache, without an attempt. It panics on a run that is not Pending.
func (r *Runner) Cached(value any) {
	if r.state != Pending {
		panic("task: Runner.Cached on a run that is " + r.state.String())
	}
	now := r.now()
	r.res.Value = value
	if r.res.Start.IsZero() {
		r.res.Start = now
	}
	r.finish(Cached, nil, now)
}

// Take returns the final run's record without copying it, for a driver
// that is done with the Runner: the Runner must not be used afterwards.
func (r *Runner) Take() Result {
	res := r.res
	// What the Runner must not keep alive; its other fields are
	// overwritten by Reset. Field by field, as in init.
	r.res.Value, r.res.Err, r.res.Attempts = nil, nil, nil
	return res
}

func (r *Runner) finish(state State, err error, now time.Time) {
	r.res.State, r.res.Err, r.res.End = state, err, now
	if r.state == Waiting {
		r.res.Waited += now.Sub(r.waitSince)
	}
	r.change(state, err, now)
	if r.o != nil {
		r.waitEnd(now, false)
		r.observeStart(now)
		ot := r.o.ot
		ot.End, ot.State, ot.Err, ot.Attempts = now, state.String(), err, r.attempt-r.first+1
		if err != nil {
			ot.Class = string(executor.ClassOf(err))
		}
		r.o.obs.TaskEnd(ot)
	}
}

func (r *Runner) change(to State, err error, now time.Time) {
	from := r.state
	r.state = to
	if r.onState != nil {
		r.onState(Change{Task: r.res.Task, RunID: r.res.RunID, Attempt: r.attempt,
			From: from, To: to, Err: err, Time: now})
	}
}

func (r *Runner) debugLogger() hclog.Logger {
	if r.logger == nil {
		return hclog.NewNullLogger()
	}
	return r.logger
}

// Run runs one task run of spec on input: it submits attempts to ex,
// waits for each, retries failed ones after their backoff delay, and
// returns the run's record once it is final.
//
// The run ends:
//   - Success when an attempt returns a nil error; Result.Value is its result;
//   - Skipped when the task returns a Skip signal;
//   - Failed or TimedOut when the last allowed attempt fails or overruns, or
//     at once for errors that are never retried (see Options.RetryIf);
//   - Cancelled when ctx ends: during an attempt the executor cancels it
//     (and a hard executor kills it) and Run waits for that; during a
//     backoff delay the run ends at once.
//
// Run never panics on a task's panic: that is an attempt failing with an
// *executor.PanicError.
func Run(ctx context.Context, ex executor.TimeoutHandler, spec Spec, input any, opts RunOptions) Result {
	r := NewRunner(spec, input, opts)
	if r.o != nil && r.o.ot.Executor == "" {
		r.o.ot.Executor = observe.ExecutorName(ex)
	}
	if ctx.Err() != nil {
		r.End(Cancelled, executor.NewCanceledError(r.res.Task, ctx))
		return r.Result()
	}
	call := r.Start()
	for {
		var (
			value  any
			err    error
			worker string
		)
		f, err := ex.Submit(ctx, call)
		if err == nil {
			// The executor completes the future when ctx ends, so waiting
			// without a bound is safe; a hard executor has killed the
			// attempt by then.
			value, err = f.Wait(context.Background())
			worker = f.Worker()
			r.AttemptDeliveries(call.Attempt, f.Deliveries())
			r.AttemptStarted(call.Attempt, f.Started())
		} else if ctx.Err() != nil {
			err = executor.NewCanceledError(call.Name(), ctx)
		} else {
			err = fmt.Errorf("task: submit %s: %w", call.String(), err)
		}
		delay, again := r.AttemptDone(call.Attempt, value, err, worker)
		if !again {
			return r.Result()
		}
		if !sleep(ctx, delay) {
			r.End(Cancelled, executor.NewCanceledError(r.res.Task, ctx))
			return r.Result()
		}
		call = r.Retry()
	}
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
