package flow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/observe"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// RunOptions configure one run of a flow. The zero value is ready to use
// for a flow without required parameters.
type RunOptions struct {
	// Args are the run's parameter values (see Parameter.Set). A required
	// parameter without one, an Arg for a parameter of another flow, and
	// two Args for one parameter make Run fail before any task starts.
	Args []Arg

	// RunID identifies the run in results, logs and hooks. Empty means a
	// random id. Each task run's id is RunID + "/" + its label, which keys
	// deduplication on executors that deduplicate (cluster).
	RunID string

	// Logger receives the flow's own messages (named "flow") and the
	// tasks' log lines (task.Logger). Nil means no logging.
	Logger hclog.Logger

	// OnState is called at every state change of every task run of the
	// flow, mapped nodes and their children included: for progress
	// displays, metrics, persistence. It is called by the run's
	// scheduler, never twice at once and in the order of the changes: on
	// the goroutine that called Run or, on executor/pool, often on the
	// worker goroutine that completed a call (see Run). It must be quick
	// and must not block (hand slow work to a goroutine or a buffered
	// channel of your own), or it holds up every task of the run. Nil
	// means no hook.
	OnState func(task.Change)

	// Store, when set, makes the run durable: it is recorded in the store
	// (its parameters, the flow's name and Hash, every task run, attempt
	// and state change), each task's result is durable before any task
	// downstream of it starts, and the run can be resumed by its id in
	// another process after a crash (Resume, ResumeExpired), restarted
	// from its failures (Restart), and run again by id without running
	// anything once it has ended (Run returns the recorded result). Task
	// results and parameters are encoded with the task's codec (JSON for
	// parameters). Tasks with Options.CacheFor use the store's cache. See
	// docs/durability.md. Nil means a run in memory only.
	Store store.Store

	// Owner names this process as the run's lease holder in the store.
	// Empty means hostname/pid/random. Only with Store.
	Owner string

	// Limits holds the limits that the flow's tasks name
	// (task.Options.Limits): each attempt of such a task takes its limits
	// from it before it is submitted, waiting in the state Waiting while
	// they are taken; share one Set between runs (and, with its own
	// store, between processes) to bound them together. A task that
	// names a limit the Set does not define, or names limits when Limits
	// is nil, fails the run before any task starts with a *limit.UseError.
	Limits *limit.Set

	// LeaseTTL is how long the run's lease lasts without a heartbeat
	// (renewed every third of it): after a crash, another process can
	// resume the run once it has passed. Zero means 30 seconds. Only with
	// Store.
	LeaseTTL time.Duration

	// Observer, when set, is told of the run's start and end, every task
	// run's and every attempt's (see package observe; the nested module
	// github.com/flowline-go/flowline/otel implements it with
	// OpenTelemetry), by the run's scheduler as OnState is, so it must be
	// as quick as OnState. Each attempt's call carries the trace context the
	// observer gives it. A durable run records the flow run's trace
	// context, and a resumed one hands it back (observe.FlowRun), so that
	// its trace goes on. Replaying an ended run by id reports nothing. Nil
	// means no observer, at the cost of a nil check per event.
	Observer observe.Observer

	// CancelPoll is how often a durable run looks in its store for a
	// cancel request (store.Store.RequestCancel, made by a dashboard, the
	// CLI or any process sharing the store); one that finds one stops
	// the run as if ctx had ended, with ErrCancelRequested as the cause,
	// and the run ends Cancelled. A resumed run with a pending request
	// is cancelled at once. Zero means every second; negative means
	// never (requests wait for a driver that looks). Only with Store.
	CancelPoll time.Duration
}

// Run runs the flow on ex and returns its result once every task run is
// final. Tasks are submitted to ex as soon as their upstream tasks are
// final, by one scheduler that runs on the calling goroutine; on
// executor/local, which runs each call inline, that means one task at a
// time. On an executor that answers through futures the run owns
// (executor.FutureSubmitter, as executor/pool does), a run without a
// Store lets the goroutine that completes a call drive the scheduler
// while the calling goroutine sleeps: the call's successors are submitted
// from there, without a hop to the calling goroutine and back. Only one
// goroutine drives it at a time. Any executor works: local, pool,
// subprocess, cluster.
//
// Run fails before any task starts, with a nil *Result and a *ParamError,
// when opts.Args do not fit the flow's parameters. Otherwise it returns
// the run's Result and Result.Err: nil when the flow's state is Success or
// Skipped, else the failures joined (see Result.Err).
//
// The run stops early when ctx ends or the flow's Options.Timeout passes:
// running calls are cancelled through the context given to Submit (a hard
// executor kills them), unstarted tasks and tasks waiting to retry end
// Cancelled at once, and Run returns as soon as the executor has reported
// every running call, with every task final. On executor/local a call
// without a limit runs on Run's own goroutine, so a task that ignores its
// context holds Run up until it returns.
//
// A Flow can be run any number of times, concurrently; runs share
// nothing but the Flow. Run panics if ex is nil.
func (f *Flow) Run(ctx context.Context, ex executor.TimeoutHandler, opts RunOptions) (*Result, error) {
	if ex == nil {
		panic("flow: Run with a nil executor")
	}
	if err := f.checkLimits(opts.Limits); err != nil {
		return nil, err
	}
	if opts.Store != nil {
		return f.runDurable(ctx, ex, opts)
	}
	params, err := f.bind(opts.Args)
	if err != nil {
		return nil, err
	}
	return f.execute(ctx, ex, params, opts, nil)
}

// execute drives one run; d links it to its store, if it has one.
func (f *Flow) execute(ctx context.Context, ex executor.TimeoutHandler, params []any, opts RunOptions, d *durable) (*Result, error) {
	r := &run{f: f, ex: ex, params: params, opts: opts, id: opts.RunID, d: d}
	r.fs, _ = ex.(executor.FutureSubmitter)
	if d != nil {
		r.id = d.runID
		if d.mode == resumeRun || d.mode == restartRun {
			r.collector, _ = ex.(executor.Collector)
		}
	}
	if r.id == "" {
		r.id = newRunID()
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("flow")
	r.start = time.Now()
	r.ctx = ctx
	if f.opts.Timeout > 0 {
		r.timeout = &TimeoutError{Flow: f.name, Limit: f.opts.Timeout}
		var cancel context.CancelFunc
		r.ctx, cancel = context.WithDeadlineCause(ctx, r.start.Add(f.opts.Timeout), r.timeout)
		defer cancel()
	}
	if d != nil && !d.replay {
		var cancel context.CancelCauseFunc
		r.ctx, cancel = context.WithCancelCause(r.ctx)
		defer cancel(nil)
		d.cancel = cancel
		r.q.signal = make(chan struct{}, 1)
		d.start(ctx, r.q.post)
	}
	logger.Debug("flow run started", "flow", f.name, "run", r.id, "tasks", len(f.nodes))
	if opts.Observer != nil && (d == nil || !d.replay) {
		r.observeStart(ctx)
	}
	r.loop()
	if d != nil && !d.replay {
		d.stopAll()
	}
	res := r.result()
	if d != nil && !d.replay {
		d.finishRun(ctx, res, r.storeErr)
	}
	r.release()
	if r.fr != nil {
		r.fr.End, r.fr.State, r.fr.Err = res.End, res.State.String(), res.Err
		r.opts.Observer.FlowEnd(r.fr)
	}
	logger.Debug("flow run finished", "flow", f.name, "run", r.id, "state", res.State,
		"duration", res.Duration())
	return res, res.Err
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// bind checks a run's arguments and returns every parameter's value.
func (f *Flow) bind(args []Arg) ([]any, error) {
	vals := make([]any, len(f.params))
	set := make([]bool, len(f.params))
	var errs []error
	for _, a := range args {
		switch {
		case a.p == nil:
			errs = append(errs, &ParamError{Flow: f.name, Err: ErrUnknownParam})
		case a.p.owner != f.owner || int(a.p.id) >= len(f.params):
			errs = append(errs, &ParamError{Flow: f.name, Param: a.p.name, Err: ErrUnknownParam})
		case set[a.p.id]:
			errs = append(errs, &ParamError{Flow: f.name, Param: a.p.name, Err: ErrDuplicateArg})
		default:
			vals[a.p.id], set[a.p.id] = a.v, true
		}
	}
	for i, p := range f.params {
		if set[i] {
			continue
		}
		if p.required {
			errs = append(errs, &ParamError{Flow: f.name, Param: p.name, Err: ErrMissingParam})
			continue
		}
		vals[i] = p.def
	}
	return vals, errors.Join(errs...)
}

// phase is where a unit is in the scheduler's eyes.
type phase uint8

const (
	waiting  phase = iota // upstream tasks not all final
	ready                 // in the ready queue
	running               // an attempt is submitted
	retrying              // waiting for a retry (timer or ready queue)
	mapping               // a mapped node whose children run
	final
	recording // final, waiting for its record to be durable
	looking   // waiting for a cache lookup
	starting  // an attempt begun, waiting for its start to be durable before it is submitted
	held      // its next attempt waits for room among the starting ones (durable runs)
	limiting  // waiting for its limits (task state Waiting)
)

// unit is the scheduler's state of one task run of a flow run: a node's
// (index = node id) or a mapped child's (appended after the nodes). Its
// record is in run.recs at the same index. Units refer to each other by
// index, because mapping appends to the slices.
type unit struct {
	runner *task.Runner
	timer  *time.Timer // a pending retry
	keys   []limit.Key // the limits' keys of its input, for a task with limits
	hold   *limit.Hold // the limits its running attempt holds
	aux    int32       // a child's node; a mapped node's index in run.maps
	phase  phase
	rejoin bool // the attempt to submit is collected (executor.Collector), not submitted anew
	// spoiled: an upstream node ended in a state other than Success or
	// Cached (see settle), so decide must look at every upstream state.
	spoiled bool
}

// mapped is a mapped node's children.
type mapped struct {
	first, n      int32 // the children's units
	done, started int32
	state         any // the prepared input, until every child has started
}

type run struct {
	f        *Flow
	ex       executor.TimeoutHandler
	ctx      context.Context
	opts     RunOptions
	id       string
	ids      string // every node's task-run id, back to back (see runID)
	params   []any
	start    time.Time
	timeout  *TimeoutError // non-nil when the flow has a limit
	d        *durable      // the run's store, if it has one
	storeErr error         // why the store stopped the run
	// collector is ex on a resumed run whose executor can collect an
	// attempt that was in flight by its identity; nil otherwise.
	collector executor.Collector
	// fs is ex when it answers through futures the run owns and reuses.
	fs     executor.FutureSubmitter
	starts map[int32]executor.Call // attempts in phase starting
	unrec  int                     // attempts submitted under a reservation, their starts not yet durable
	held   []int32                 // units in phase held, FIFO

	recs      []TaskRun
	units     []unit
	maps      []mapped
	remaining []int32 // per node: upstream nodes not final yet
	ready     []int32 // FIFO of units to start, from head
	head      int
	open      int // nodes not final
	stopping  bool

	// Attempts an executor refused with executor.ErrQueueFull ("no room
	// yet"), FIFO: they are submitted again after the next completion, or
	// after roomWait if nothing of the run completes meanwhile. Such an
	// attempt is never failed or retried for it.
	parked   []parkedCall
	roomT    *time.Timer
	roomWait time.Duration
	states   []task.State   // scratch for triggers
	waiters  []*waiter      // free
	runners  []*task.Runner // free, for Reset
	attempts []task.Attempt // the next attempt records to hand out (see runner)
	made     int            // task runs given an attempt record
	batch    []event        // events being handled
	sc       *scratch       // where the slices above came from

	// With an observer: the flow run's event, and the mapped nodes' task
	// runs by node (a mapped node has no task.Runner to report it).
	fr     *observe.FlowRun
	mobs   map[int32]*observe.TaskRun
	exName string

	// With inline, a completion is handled on the goroutine that
	// completes the call when the loop sleeps (see dispatch). driving
	// says that a goroutine drives the run's scheduler: the loop, or such
	// a goroutine; only the one that set it touches the run's state.
	inline  bool
	driving atomic.Bool

	q queue

	// clock is the task runners' clock on a run in memory (see
	// stepClock); nil on a durable run, whose runners read time.Now.
	clock *stepClock
}

// observeStart reports the run's start to its observer.
func (r *run) observeStart(ctx context.Context) {
	r.fr = &observe.FlowRun{Flow: r.f.name, RunID: r.id, Tasks: len(r.f.nodes), Start: r.start}
	if r.d != nil && r.d.mode != freshRun {
		r.fr.Resumed = true
		r.fr.TraceParent, r.fr.TraceState = r.d.loadTrace(ctx)
	}
	was := r.fr.TraceParent
	r.exName = observe.ExecutorName(r.ex)
	r.opts.Observer.FlowStart(ctx, r.fr)
	if r.d != nil {
		tp, ts := observe.Clean(r.fr.TraceParent, r.fr.TraceState)
		r.d.saveTrace(ctx, tp, ts, was)
	}
}

// observeMapped returns mapped node i's task run for the observer,
// reporting its start the first time.
func (r *run) observeMapped(i int32) *observe.TaskRun {
	if ot := r.mobs[i]; ot != nil {
		return ot
	}
	if r.mobs == nil {
		r.mobs = make(map[int32]*observe.TaskRun)
	}
	nd := &r.f.nodes[i]
	ot := &observe.TaskRun{Flow: r.fr, Task: nd.name, Label: nd.name, RunID: r.runID(i), Executor: r.exName,
		Mapped: true, Start: time.Now()}
	r.mobs[i] = ot
	r.opts.Observer.TaskStart(ot)
	return ot
}

// release gives the run's working memory to the flow's next run, once the
// Result is made: the memory, not what it points to.
func (r *run) release() {
	clear(r.units)
	clear(r.batch)
	items := r.q.close()
	clear(items)
	for _, w := range r.waiters {
		w.r = nil
	}
	*r.sc = scratch{units: r.units[:0], remaining: r.remaining[:0], ready: r.ready[:0],
		items: items[:0], batch: r.batch[:0], waiters: r.waiters, states: r.states[:0], runners: r.runners,
		clock: r.sc.clock}
	if old := r.f.last.Swap(r.sc); old != nil {
		r.f.scratch.Put(old)
	}
	r.units, r.remaining, r.ready, r.q.items, r.batch, r.waiters, r.runners, r.sc = nil, nil, nil, nil, nil, nil, nil, nil
}

// event is a completion (w) or a retry timer (unit, attempt), posted
// from other goroutines.
type event struct {
	room    bool // roomT fired: submit the parked attempts again
	w       *waiter
	unit    int32
	attempt int32
	rec     *recorded // from the recorder of a durable run
	look    *lookup   // from a cache lookup
	lim     *limited  // from the limit set: a wait's end
}

// waiter is a submitted attempt whose Future has not completed when Submit
// returned. Its done func, made once, posts it to the loop; waiters are
// recycled once the loop has handled their completion, so an attempt on a
// concurrent executor costs no allocation of the flow's own.
type waiter struct {
	r             *run
	unit, attempt int32
	fut           *executor.Future // own, or the executor's without executor.FutureSubmitter
	own           executor.Future  // given to executor.FutureSubmitter, reset for each attempt
	done          func()
}

// scratch is a run's working memory that outlives it: the next run of the
// same flow reuses it (through Flow.scratch), so repeated runs do not
// allocate it again. The records are not part of it: a Result keeps them.
type scratch struct {
	units     []unit
	remaining []int32
	ready     []int32
	items     []event
	batch     []event
	waiters   []*waiter
	states    []task.State
	runners   []*task.Runner
	clock     *stepClock
}

// queue is the run's inbox: unbounded, so posting never blocks the
// executor goroutine that completes a call, with a size-one channel to
// wake the loop.
type queue struct {
	mu     sync.Mutex
	items  []event
	n      atomic.Int32 // len(items), read without the lock
	signal chan struct{}
	closed bool // the run ended: late events are dropped
}

func (q *queue) post(e event) {
	q.postQuiet(e)
	q.wake()
}

// postQuiet queues e without waking the loop.
func (q *queue) postQuiet(e event) {
	q.mu.Lock()
	if q.closed {
		// A timer that fired as the run ended (the room timer, whose
		// Stop came too late): nothing is left to handle it, and the
		// queue's memory is the next run's.
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, e)
	q.n.Store(int32(len(q.items)))
	q.mu.Unlock()
}

// wake wakes the loop without an event: a completion handled off the
// loop ended the run's last task.
func (q *queue) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// close ends the queue and returns its memory.
func (q *queue) close() []event {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	items := q.items
	q.items = nil
	return items
}

// spin yields the processor a few times, for executor workers to
// complete calls that are about to return, and reports whether an event
// came in: a wake-up through the channel costs more than a few yields.
func (q *queue) spin() bool {
	for range 4 {
		if q.n.Load() > 0 {
			select {
			case <-q.signal:
			default:
			}
			return true
		}
		runtime.Gosched()
	}
	return false
}

// take swaps the queued events into buf and returns them.
func (q *queue) take(buf []event) []event {
	q.mu.Lock()
	items := q.items
	q.items = buf[:0]
	q.n.Store(0)
	q.mu.Unlock()
	return items
}

// runID returns node i's task-run id, r.id + "/" + its name, from r.ids:
// one allocation for all of them.
func (r *run) runID(i int32) string {
	l := len(r.id) + 1
	start := int(i)*l + int(r.f.nameAt[i])
	return r.ids[start : start+l+len(r.f.nodes[i].name)]
}

func (r *run) loop() {
	f := r.f
	n := len(f.nodes)
	if r.q.signal == nil {
		r.q.signal = make(chan struct{}, 1)
	}
	r.recs = make([]TaskRun, n)
	sc := f.last.Swap(nil)
	if sc == nil {
		sc, _ = f.scratch.Get().(*scratch)
	}
	if sc == nil {
		sc = &scratch{}
	}
	r.units = slices.Grow(sc.units[:0], n)[:n]
	r.remaining = slices.Grow(sc.remaining[:0], n)[:n]
	r.ready, r.q.items, r.waiters, r.states, r.runners = sc.ready[:0], sc.items[:0], sc.waiters, sc.states, sc.runners
	r.sc, r.batch = sc, sc.batch[:0]
	if r.d == nil {
		if sc.clock == nil {
			sc.clock = newStepClock()
		}
		r.clock = sc.clock
		r.expireClock() // the last run's reading
	}
	r.open = n
	var ids strings.Builder
	ids.Grow(n*(len(r.id)+1) + int(f.nameAt[n]))
	prefix := r.id + "/"
	for i := range r.recs {
		nd := &f.nodes[i]
		ids.WriteString(prefix)
		ids.WriteString(nd.name)
		rec := &r.recs[i]
		rec.Index = -1
		rec.Mapped = nd.kind == mappedNode
		r.remaining[i] = f.upAt[i+1] - f.upAt[i]
	}
	r.ids = ids.String()
	for _, i := range f.order {
		if r.remaining[i] == 0 {
			r.push(i)
		}
	}
	done := r.ctx.Done()
	r.inline = r.fs != nil && r.d == nil
	r.driving.Store(true) // see dispatch
	ended := false        // ctx ended: stop once the loop drives again
	for {
		if ended && !r.stopping {
			r.stop()
		}
		r.drain()
		if r.open == 0 {
			break
		}
		stopping := r.stopping
		r.driving.Store(false)
		// A completion queued without a wake-up while the loop drove is
		// the loop's now, or the driver's that takes over.
		wait := r.q.n.Load() == 0
		for {
			if !wait {
				wait = true
			} else if !r.inline && r.q.spin() {
				// a completion came in while we yielded
			} else if stopping || ended {
				<-r.q.signal
			} else {
				select {
				case <-r.q.signal:
				case <-done:
					ended = true
				}
			}
			// A completion handled off the loop drives the run until it
			// is done, then wakes the loop if there is something for it.
			if r.driving.CompareAndSwap(false, true) {
				break
			}
		}
		r.expireClock() // the loop may have slept
		r.batch = r.q.take(r.batch)
		for _, e := range r.batch {
			r.handle(e)
		}
		clear(r.batch) // drop the futures
		if len(r.parked) > 0 {
			r.unpark() // something completed, or roomT fired: room may have come
		}
		if r.open == 0 {
			break
		}
	}
	if r.roomT != nil {
		r.roomT.Stop()
	}
}

// drain steps the units in the ready queue, stopping the run first if
// its context has ended.
func (r *run) drain() {
	done := r.ctx.Done()
	for r.head < len(r.ready) {
		if done != nil && !r.stopping {
			select {
			case <-done:
				r.stop()
			default:
			}
		}
		u := r.ready[r.head]
		r.head++
		r.step(u)
		if r.head > 4096 && 2*r.head > len(r.ready) {
			r.ready = r.ready[:copy(r.ready, r.ready[r.head:])]
			r.head = 0
		}
	}
	r.ready, r.head = r.ready[:0], 0
}

func (r *run) push(u int32) {
	if r.units[u].phase == waiting {
		r.units[u].phase = ready
	}
	r.ready = append(r.ready, u)
}

// child reports whether unit i is a mapped child: they come after the
// nodes.
func (r *run) child(i int32) bool { return int(i) >= len(r.f.nodes) }

// step starts what a unit popped from the ready queue needs.
func (r *run) step(i int32) {
	u := &r.units[i]
	switch u.phase {
	case ready:
		switch {
		case r.stopping:
			r.cancel(i)
		case r.child(i):
			r.startChild(i)
		default:
			r.startNode(i)
		}
	case retrying: // a retry without delay
		if r.stopping {
			r.cancel(i)
			return
		}
		r.next(i)
	}
}

func (r *run) taskOptions(label, runID string) task.RunOptions {
	o := task.RunOptions{RunID: runID, Label: label, Logger: r.opts.Logger, OnState: r.opts.OnState}
	if r.clock != nil {
		o.Clock = r.clock.now
	}
	if r.fr != nil {
		o.Observer, o.ObserveAs = r.opts.Observer, &observe.TaskRun{Flow: r.fr, Executor: r.exName}
	}
	if r.d != nil {
		o.OnState = r.onChange
		if p := r.d.prior[label]; p != nil {
			o.Prior = p.attempts
		}
	}
	return o
}

// onChange records a durable run's task state change, then calls the
// caller's hook.
func (r *run) onChange(c task.Change) {
	r.d.change(c)
	if r.opts.OnState != nil {
		r.opts.OnState(c)
	}
}

// restore ends unit i with its recorded result, if a resume keeps it.
func (r *run) restore(i int32, label string) bool {
	if r.d == nil {
		return false
	}
	p := r.d.prior[label]
	if p == nil || !p.keep {
		return false
	}
	r.recs[i].Result = p.rec
	r.settle(i)
	return true
}

// startNode decides whether node i runs, from its upstream states, and
// starts it.
func (r *run) startNode(i int32) {
	nd := &r.f.nodes[i]
	if nd.kind != mappedNode && r.restore(i, nd.name) {
		return
	}
	if state, err := r.decide(i); state != task.Pending {
		if nd.kind == mappedNode {
			r.name(i)
			r.end(i, state, err)
			return
		}
		opts := r.taskOptions(nd.name, r.runID(i))
		rn := r.runner(nd.spec, nil, &opts, false)
		rn.End(state, err)
		r.units[i].runner = rn
		r.finish(i)
		return
	}
	if nd.kind == mappedNode {
		r.startMapped(i)
		return
	}
	in, err := r.input(nd)
	opts := r.taskOptions(nd.name, r.runID(i))
	r.startRun(i, nd, in, err, &opts)
}

// startRun starts unit i's task run of nd on in, or fails it without an attempt
// when its input could not be made (inErr).
func (r *run) startRun(i int32, nd *node, in any, inErr error, opts *task.RunOptions) {
	rn := r.runner(nd.spec, in, opts, inErr == nil)
	r.units[i].runner = rn
	if inErr != nil {
		rn.End(task.Failed, inErr)
		r.finish(i)
		return
	}
	if len(nd.limits) > 0 {
		keys, err := limit.Keys(nd.name, nd.limits, in)
		if err != nil {
			rn.End(task.Failed, err)
			r.finish(i)
			return
		}
		r.units[i].keys = keys
	}
	if r.d != nil && !r.d.replay && nd.spec.Options().CacheFor > 0 {
		key, err := cacheKey(nd, in)
		if err != nil {
			rn.End(task.Failed, err)
			r.finish(i)
			return
		}
		if key != "" {
			r.units[i].phase = looking
			r.d.look(r.ctx, i, key, nd.spec.Handler(), r.q.post)
			return
		}
	}
	r.next(i)
}

// launch begins unit i's next attempt; on a resumed run whose executor
// collects (executor.Collector), a task run that was in flight at the
// crash rejoins its recorded attempt instead, whose start is durable.
func (r *run) launch(i int32) {
	u := &r.units[i]
	if r.d != nil && !r.d.replay && len(r.starts)+r.unrec >= startWindow {
		u.phase = held
		r.held = append(r.held, i)
		return
	}
	if r.collector != nil && u.runner.Rejoinable() {
		u.rejoin = true
		call := u.runner.Rejoin()
		r.submit(i, &call)
		return
	}
	// The call goes down by pointer: it is 88 bytes, passed on through
	// started, submit and trySubmit for each task.
	call := u.runner.Next()
	r.started(i, &call)
}

// startWindow bounds a durable run's attempts begun and waiting for their
// start to be durable; the next ones wait to begin (phase held). A fan-out
// of ten thousand then records its starts a window at a time, each commit
// small, while the executor works on the window before, instead of one
// commit of them all before the first call goes out; and an attempt's
// recorded start is close to its submission. 64 keeps a commit of starts
// small (storebench, SQLite at synchronous=FULL, pool of 8: commit p50
// 2.3-3.7 ms with 64, 17-23 ms with 512, at the same task runs per second
// within the machine's noise).
const startWindow = 64

// unhold begins held attempts while there is room among the starting
// ones.
func (r *run) unhold() {
	for len(r.held) > 0 && len(r.starts)+r.unrec < startWindow {
		i := r.held[0]
		r.held = r.held[1:]
		if r.units[i].phase == held {
			r.launch(i)
		}
	}
	if len(r.held) == 0 {
		r.held = nil
	}
}

// started submits a new attempt's call; on a durable run, once its start
// is durable, so that an attempt number is never used twice, a crash
// between the two included (the resume numbers its attempt after every
// one that may have been submitted).
func (r *run) started(i int32, call *executor.Call) {
	if r.d == nil || r.d.replay || r.reserved(i, call.Attempt) {
		r.submit(i, call)
		return
	}
	r.units[i].phase = starting
	if r.starts == nil {
		r.starts = map[int32]executor.Call{}
	}
	r.starts[i] = *call
	r.d.await(i)
}

// decide returns Pending if node i runs, else the state it ends in
// without running and why: Skipped for a skipped upstream (unless the
// task runs on upstream skips), TriggerFailed when its trigger refuses,
// Cancelled when it refuses and an upstream was cancelled.
func (r *run) decide(i int32) (task.State, error) {
	f := r.f
	nd := &f.nodes[i]
	ups := f.up[f.upAt[i]:f.upAt[i+1]]
	if len(ups) == 0 {
		return task.Pending, nil
	}
	if !r.units[i].spoiled {
		// Every upstream succeeded (Success or Cached): nothing was
		// skipped or cancelled, and these triggers allow it, without a
		// look at each upstream's record.
		switch nd.trigger {
		case task.AllSuccessful, task.AllFinished, task.AnySuccessful:
			return task.Pending, nil
		}
	}
	states := r.states[:0]
	skipped, cancelled := int32(-1), int32(-1)
	for _, u := range ups {
		s := r.recs[u].State
		states = append(states, s)
		switch {
		case s == task.Skipped && skipped < 0:
			skipped = u
		case s == task.Cancelled && cancelled < 0:
			cancelled = u
		}
	}
	r.states = states
	if skipped >= 0 && !nd.runOnSkip {
		return task.Skipped, task.Skip(fmt.Sprintf("upstream %q was skipped", f.nodes[skipped].name))
	}
	if nd.trigger.Allows(states) {
		return task.Pending, nil
	}
	if cancelled >= 0 {
		return task.Cancelled, fmt.Errorf("flow: task %q not run: upstream %q was cancelled: %w",
			nd.name, f.nodes[cancelled].name, context.Canceled)
	}
	te := &TriggerError{Task: nd.name, Trigger: nd.trigger, Upstream: make([]Upstream, len(ups))}
	for k, u := range ups {
		te.Upstream[k] = Upstream{Task: f.nodes[u].name, State: states[k]}
	}
	return task.TriggerFailed, te
}

// input builds a plain node's input; a panic in a Combine or Convert
// function is a bad input, which is never retried. A node added without
// an input (nd.input nil) gets nil, the zero value of its input type, and
// skips the recover, which most nodes of a large flow do not need.
func (r *run) input(nd *node) (in any, err error) {
	if nd.input == nil {
		return nil, nil
	}
	defer func() {
		if v := recover(); v != nil {
			in, err = nil, r.badInput(nd, v)
		}
	}()
	return nd.input(r), nil
}

func (r *run) badInput(nd *node, v any) error {
	return &executor.InputError{Task: nd.name, Type: nd.spec.Handler().InputType().String(),
		Err: fmt.Errorf("flow: building the input panicked: %v", v)}
}

// startMapped evaluates a mapped node's input and queues its children.
func (r *run) startMapped(i int32) {
	nd := &r.f.nodes[i]
	r.begin(i)
	n, state, err := r.prepare(nd)
	if err != nil {
		r.end(i, task.Failed, err)
		return
	}
	first := int32(len(r.units))
	r.units[i].aux = int32(len(r.maps))
	r.maps = append(r.maps, mapped{first: first, n: int32(n), state: state})
	r.recs[i].Children = n
	for k := range n {
		r.units = append(r.units, unit{aux: i, phase: ready})
		r.recs = append(r.recs, TaskRun{Index: k})
	}
	if n == 0 {
		r.gather(i)
		return
	}
	for k := range int32(n) {
		r.ready = append(r.ready, first+k)
	}
}

func (r *run) prepare(nd *node) (n int, state any, err error) {
	defer func() {
		if v := recover(); v != nil {
			n, state, err = 0, nil, r.badInput(nd, v)
		}
	}()
	n, state = nd.prepare(r)
	return n, state, nil
}

// children returns mapped node i's children.
func (r *run) children(i int32) *mapped { return &r.maps[r.units[i].aux] }

// childIDs returns a child's label, "name[k]", and its task-run id,
// r.id + "/" + label, in one allocation.
func (r *run) childIDs(c int32) (label, runID string) {
	rec := &r.recs[c]
	var a [96]byte
	b := append(a[:0], r.id...)
	b = append(b, '/')
	b = append(b, r.f.nodes[r.units[c].aux].name...)
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(rec.Index), 10)
	b = append(b, ']')
	runID = string(b)
	return runID[len(r.id)+1:], runID
}

func (r *run) startChild(c int32) {
	node := r.units[c].aux
	nd := &r.f.nodes[node]
	m := r.children(node)
	in, err := func() (in any, err error) {
		defer func() {
			if v := recover(); v != nil {
				in, err = nil, r.badInput(nd, v)
			}
		}()
		return nd.child(m.state, r.recs[c].Index), nil
	}()
	if m.started++; m.started == m.n {
		m.state = nil
	}
	label, runID := r.childIDs(c)
	if r.restore(c, label) {
		return
	}
	opts := r.taskOptions(label, runID)
	if opts.ObserveAs != nil { // a mapped child's task run is its node's child
		opts.ObserveAs.Parent = r.observeMapped(node)
	}
	r.startRun(c, nd, in, err, &opts)
}

// submit hands an attempt to the executor. A call the executor completed
// inline (executor/local) is handled at once; otherwise the future's
// OnDone posts its completion to the loop. OnDone runs on the goroutine
// that completes the future, often an executor worker, so it only posts:
// submitting from there could block that worker on a full queue.
func (r *run) submit(i int32, call *executor.Call) {
	r.units[i].phase = running
	if len(r.parked) > 0 { // keep the order: no overtaking a parked attempt
		r.parked = append(r.parked, parkedCall{i, *call})
		return
	}
	r.trySubmit(i, call)
}

// parkedCall is an attempt waiting for room in the executor.
type parkedCall struct {
	unit int32
	call executor.Call
}

// trySubmit submits an attempt and reports false if the executor had no
// room for it (executor.ErrQueueFull), in which case it is parked. The
// contract's Submit waits for room instead; a Submit that fails fast with
// ErrQueueFull (a TrySubmit-like executor) must not fail the attempt.
func (r *run) trySubmit(i int32, call *executor.Call) bool {
	var fut *executor.Future
	var w *waiter
	var err error
	if u := &r.units[i]; u.rejoin {
		fut, err = r.collector.Collect(r.ctx, *call)
		if !errors.Is(err, executor.ErrQueueFull) {
			u.rejoin = false
		}
	} else if fs := r.fs; fs != nil {
		w = r.waiter()
		if err = fs.SubmitFuture(r.ctx, *call, &w.own); err != nil {
			r.free(w)
		} else {
			fut = &w.own
		}
	} else {
		fut, err = r.ex.Submit(r.ctx, *call)
	}
	r.expireClock() // executor/local has run the task
	if err != nil {
		if errors.Is(err, executor.ErrQueueFull) && r.ctx.Err() == nil {
			r.park(i, *call)
			return false
		}
		if r.ctx.Err() != nil {
			err = executor.NewCanceledError(call.Name(), r.ctx)
		} else {
			err = fmt.Errorf("flow: submit %s: %w", call.String(), err)
		}
		r.outcome(i, call.Attempt, nil, err, "")
		return true
	}
	r.roomWait = 0
	if v, err, ok := fut.Result(); ok {
		r.units[i].runner.AttemptDeliveries(call.Attempt, fut.Deliveries())
		if r.fr != nil {
			r.units[i].runner.AttemptStarted(call.Attempt, fut.Started())
		}
		worker := fut.Worker()
		if w != nil {
			r.free(w)
		}
		r.outcome(i, call.Attempt, v, err, worker)
		return true
	}
	if w == nil {
		w = r.waiter()
	}
	w.unit, w.attempt, w.fut = i, int32(call.Attempt), fut
	fut.OnDone(w.done)
	return true
}

// park keeps an attempt the executor had no room for, at the front of the
// parked ones, and makes sure the loop tries again: at the next completion
// (see unpark), or when roomT fires, backing off from 1ms to 100ms while
// the executor stays full with nothing of this run completing.
func (r *run) park(i int32, call executor.Call) {
	r.parked = append(r.parked, parkedCall{})
	copy(r.parked[1:], r.parked)
	r.parked[0] = parkedCall{i, call}
	if r.roomT != nil {
		return
	}
	r.roomWait = min(max(2*r.roomWait, time.Millisecond), 100*time.Millisecond)
	r.roomT = time.AfterFunc(r.roomWait, func() { r.q.post(event{room: true}) })
}

// unpark submits parked attempts again, in order, until the executor has
// no room; on a stopping run it ends them Cancelled instead.
func (r *run) unpark() {
	if r.roomT != nil {
		r.roomT.Stop()
		r.roomT = nil
	}
	for len(r.parked) > 0 {
		p := r.parked[0]
		r.parked = r.parked[1:]
		if r.stopping || r.ctx.Err() != nil {
			r.outcome(p.unit, p.call.Attempt, nil, executor.NewCanceledError(p.call.Name(), r.ctx), "")
			continue
		}
		if !r.trySubmit(p.unit, &p.call) {
			return
		}
	}
	r.parked = nil
}

// waiter returns a free waiter, making them 32 at a time.
func (r *run) waiter() *waiter {
	if len(r.waiters) == 0 {
		chunk := make([]waiter, 32)
		for k := range chunk {
			r.waiters = append(r.waiters, &chunk[k])
		}
	}
	w := r.waiters[len(r.waiters)-1]
	r.waiters = r.waiters[:len(r.waiters)-1]
	w.r = r
	if w.done == nil {
		w.done = func() { w.r.dispatch(w) }
	}
	return w
}

// outcome records an attempt's outcome, and schedules a retry or settles
// the unit.
func (r *run) outcome(i int32, attempt int, v any, err error, worker string) {
	u := &r.units[i]
	if u.phase != running {
		return
	}
	if u.hold != nil {
		u.hold.Release()
		u.hold = nil
	}
	delay, again := u.runner.AttemptDone(attempt, v, err, worker)
	if !again {
		if u.runner.State().Final() {
			r.finish(i)
		}
		return
	}
	u.phase = retrying
	if r.stopping {
		r.cancel(i)
		return
	}
	if delay <= 0 {
		r.ready = append(r.ready, i)
		return
	}
	n := int32(attempt)
	u.timer = time.AfterFunc(delay, func() { r.q.post(event{unit: i, attempt: n}) })
}

func (r *run) handle(e event) {
	r.expireClock()
	switch {
	case e.rec != nil:
		r.recorded(e.rec)
		return
	case e.look != nil:
		r.looked(e.look)
		return
	case e.lim != nil:
		r.limitDone(e.unit, e.lim)
		return
	case e.room:
		return // the loop submits the parked attempts after the batch
	}
	if w := e.w; w != nil {
		i, attempt, fut := w.unit, w.attempt, w.fut
		v, err, _ := fut.Result()
		if u := &r.units[i]; u.phase == running {
			u.runner.AttemptDeliveries(int(attempt), fut.Deliveries())
			if r.fr != nil {
				u.runner.AttemptStarted(int(attempt), fut.Started())
			}
		}
		worker := fut.Worker()
		r.free(w)
		r.outcome(i, int(attempt), v, err, worker)
		return
	}
	u := &r.units[e.unit]
	u.timer = nil
	if u.phase != retrying {
		return
	}
	if r.stopping {
		r.cancel(e.unit)
		return
	}
	r.next(e.unit)
}

// stop ends the run early: whatever has not started, or waits to retry,
// ends Cancelled now; running calls were cancelled with the context and
// their completions are still awaited.
func (r *run) stop() {
	r.stopping = true
	if len(r.parked) > 0 {
		r.unpark() // ends them Cancelled
	}
	if r.d != nil {
		r.d.stopLookups()
	}
	for i := range int32(len(r.units)) {
		u := &r.units[i]
		switch u.phase {
		case waiting, ready:
			r.cancel(i)
		case retrying:
			if u.timer == nil || u.timer.Stop() {
				u.timer = nil
				r.cancel(i)
			}
			// else the timer has fired: its event ends the unit.
		case held:
			if u.hold != nil {
				u.hold.Release()
				u.hold = nil
			}
			r.cancel(i)
		case starting:
			call := r.starts[i]
			delete(r.starts, i)
			u.phase = running
			r.outcome(i, call.Attempt, nil, executor.NewCanceledError(call.Name(), r.ctx), "")
		}
	}
}

// cancel ends a unit that is not running Cancelled.
func (r *run) cancel(i int32) {
	u := &r.units[i]
	var label, runID string
	var nd *node
	if r.child(i) {
		nd = &r.f.nodes[u.aux]
		label, runID = r.childIDs(i)
	} else {
		nd = &r.f.nodes[i]
		label, runID = nd.name, r.runID(i)
		if nd.kind == mappedNode {
			r.name(i)
			r.end(i, task.Cancelled, executor.NewCanceledError(label, r.ctx))
			return
		}
	}
	if u.runner == nil {
		o := r.taskOptions(label, runID)
		if o.ObserveAs != nil && r.child(i) {
			o.ObserveAs.Parent = r.observeMapped(u.aux)
		}
		u.runner = r.runner(nd.spec, nil, &o, false)
	}
	u.runner.End(task.Cancelled, executor.NewCanceledError(label, r.ctx))
	r.finish(i)
}

// finish records a unit whose runner is final and settles it.
func (r *run) finish(i int32) {
	u := &r.units[i]
	moveResult(&r.recs[i].Result, u.runner.Take())
	r.runners = append(r.runners, u.runner)
	u.runner = nil
	if r.d != nil && !r.d.replay {
		node := i
		if r.child(i) {
			node = u.aux
		}
		nd := &r.f.nodes[node]
		u.phase = recording
		r.d.final(r, i, nd)
		return
	}
	r.settle(i)
}

// moveResult stores res in *dst field by field: a whole-struct store into
// the heap goes through typedmemmove, whose bulk write barrier walks every
// pointer word of the record while the collector marks (2026-12-04: 2% of
// the CPU of a 32x32 lattice on executor/local).
func moveResult(dst *task.Result, res task.Result) {
	dst.Task, dst.RunID, dst.State = res.Task, res.RunID, res.State
	dst.Value, dst.Err, dst.Attempts = res.Value, res.Err, res.Attempts
	dst.Start, dst.End, dst.Waited = res.Start, res.End, res.Waited
}

// settle marks unit i final and lets its dependents go on.
func (r *run) settle(i int32) {
	u := &r.units[i]
	u.phase = final
	if r.child(i) {
		if m := r.children(u.aux); func() bool { m.done++; return m.done == m.n }() {
			r.gather(u.aux)
		}
		return
	}
	r.open--
	f := r.f
	if s := r.recs[i].State; s != task.Success && s != task.Cached {
		for _, d := range f.down[f.downAt[i]:f.downAt[i+1]] {
			r.units[d].spoiled = true
		}
	}
	for _, d := range f.down[f.downAt[i]:f.downAt[i+1]] {
		if r.remaining[d]--; r.remaining[d] == 0 && r.units[d].phase == waiting {
			r.push(d)
		}
	}
}

// name labels a mapped node's record, which no task.Runner keeps.
func (r *run) name(i int32) {
	rec := &r.recs[i]
	rec.Task = r.f.nodes[i].name
	rec.RunID = r.runID(i)
}

// begin moves a mapped node to Running.
func (r *run) begin(i int32) {
	r.name(i)
	r.units[i].phase = mapping
	r.recs[i].Start = time.Now()
	r.change(i, task.Running, nil)
	if r.fr != nil {
		r.observeMapped(i)
	}
}

// end ends a mapped node in state with err.
func (r *run) end(i int32, state task.State, err error) {
	rec := &r.recs[i]
	rec.End = time.Now()
	rec.Err = err
	r.change(i, state, err)
	if r.fr != nil {
		ot := r.observeMapped(i)
		ot.End, ot.State, ot.Err, ot.Children = rec.End, state.String(), err, rec.Children
		if err != nil {
			ot.Class = string(executor.ClassOf(err))
		}
		r.opts.Observer.TaskEnd(ot)
	}
	if r.d != nil {
		r.d.mappedFinal(rec)
	}
	r.settle(i)
}

func (r *run) change(i int32, to task.State, err error) {
	rec := &r.recs[i]
	from := rec.State
	rec.State = to
	if r.opts.OnState != nil || r.d != nil {
		c := task.Change{Task: rec.Task, RunID: rec.RunID, From: from, To: to, Err: err, Time: time.Now()}
		if r.d != nil {
			r.d.change(c)
		}
		if r.opts.OnState != nil {
			r.opts.OnState(c)
		}
	}
}

// gather ends a mapped node whose children are all final.
func (r *run) gather(i int32) {
	m := r.children(i)
	nd := &r.f.nodes[i]
	var failed, cancelled, skipped int
	var firstErr error
	for c := m.first; c < m.first+m.n; c++ {
		rec := &r.recs[c]
		switch {
		case rec.State.Failure():
			failed++
		case rec.State == task.Cancelled:
			cancelled++
		case rec.State == task.Skipped:
			skipped++
		default:
			continue
		}
		if firstErr == nil && rec.State != task.Skipped {
			firstErr = rec.Err
		}
	}
	r.recs[i].Value = nd.gather(r, m.first, m.n)
	state, err := task.Success, error(nil)
	switch {
	case failed > 0:
		state = task.Failed
		err = fmt.Errorf("flow: %d of %d children of %q failed; the first: %w", failed, m.n, nd.name, firstErr)
	case cancelled > 0:
		state = task.Cancelled
		err = fmt.Errorf("flow: %d of %d children of %q were cancelled: %w", cancelled, m.n, nd.name, firstErr)
	case skipped > 0 && skipped == int(m.n):
		state = task.Skipped
		err = task.Skip(fmt.Sprintf("all %d children of %q were skipped", m.n, nd.name))
	}
	r.end(i, state, err)
}
