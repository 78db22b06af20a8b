package pool

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/internal/deadlinectx"
)

// A worker's state word packs the number of the call it is on (its
// generation) with a phase. Whoever moves a call out of running decides who
// answers it: the worker itself when the call returns, or an answerer (the
// timer at the limit, the cancellation of the submitter's context) that
// then owns the answer while the work goes on, abandoned. Answerers and
// Shutdown's inspection hold the worker's mutex while they change the
// state; the worker changes it without the mutex on the fast path and takes
// the mutex only when its compare-and-swap fails.
const (
	idle     uint64 = iota // between calls
	running                // running a call nobody else has answered
	answered               // running a call already answered: abandoned
	held                   // running, and being inspected by Shutdown
)

func pack(gen, phase uint64) uint64 { return gen<<2 | phase }
func phaseOf(s uint64) uint64       { return s & 3 }

// worker is one worker goroutine and the call it is running. Only the
// worker writes cur, start and lctx, and only between calls; answerers read
// them after winning the state word.
type worker struct {
	e    *Executor
	name string // "pool/3", for Future.Worker

	state     atomic.Uint64
	deadline  atomic.Int64 // ns since the executor's epoch; 0: no limit
	succeeded atomic.Uint64
	failed    atomic.Uint64

	loopFn func() // w.loop, made at the first start (under the executor's mutex)

	mu    sync.Mutex // serialises answerers and inspection with the worker's slow path
	gen   uint64     // the worker's call count; worker only
	cur   job
	start time.Time         // when the current call started, for a limited call
	lctx  *deadlinectx.Lazy // the current call's context, for a limited call
	lt    limitTimer        // enforces the deadline (watchdog.go)

	// The last call context made, reused while calls have the same
	// identity, logger and parent: it is immutable, so sharing it between
	// calls that would get equal ones is invisible to them. A call of
	// another identity gets a new one from ctxs, which allocates once per
	// 64 calls; none is ever reused, so a context a task keeps after it
	// returns goes on carrying that task's identity.
	ctxs      executor.CallContexts
	cc        context.Context
	ccParent  context.Context
	ccHandler *executor.Handler
	ccRun     string
	ccAttempt int
	ccLogger  hclog.Logger

	_ [64]byte // keep neighbouring workers off this worker's cache lines
}

// loop is a worker's goroutine: it runs the call it was started with and
// then queued calls until the queue is empty.
func (w *worker) loop() {
	w.run()
	w.resume()
}

// starter returns w.loop as a func value made once per worker: a go
// statement with a method call would allocate its closure at every start.
// It is called under the executor's mutex.
func (w *worker) starter() func() {
	if w.loopFn == nil {
		w.loopFn = w.loop
	}
	return w.loopFn
}

// resume runs queued calls until the queue is empty.
func (w *worker) resume() {
	for w.e.next(w) {
		w.run()
	}
}

// invoke runs the task of call g. If the task calls runtime.Goexit, which
// nothing can stop, invoke does not return: its deferred function answers
// the call, on the worker's exiting goroutine, with an
// *executor.PanicError matching executor.ErrGoexit (as
// Handler.RunOnGoexit would, without a func value per worker), and starts
// a new goroutine in its place: the worker keeps its slot (live is
// unchanged) and goes on with the queue.
func (w *worker) invoke(ctx context.Context, g uint64) (v any, err error) {
	returned := false
	defer func() {
		if !returned {
			// Handler.Run recovers panics: only Goexit gets here.
			w.finish(g, nil, &executor.PanicError{Task: w.cur.call.Name(), Value: executor.ErrGoexit,
				Stack: debug.Stack()})
			go w.resume()
		}
	}()
	v, err = w.cur.call.Handler.Run(ctx, w.cur.call.Input)
	returned = true
	return v, err
}

// run runs w.cur.
func (w *worker) run() {
	e := w.e
	j := &w.cur
	w.gen++
	g := w.gen
	ctx := w.callContext(j)
	limit := j.call.Limit
	if limit > 0 || j.tk != nil || j.call.Trace != nil {
		// Only a call that can be answered by someone else needs its start
		// time: for its deadline, its TimeoutError, its abandonment log;
		// and an observed one (Call.Trace), for its Future.
		w.start = time.Now()
	}
	if j.call.Trace != nil && j.promise != (executor.Promise{}) {
		// Before the state store below: whoever completes the future
		// (this worker, its timer, a cancellation) is ordered after it.
		j.promise.SetStarted(w.start)
	}
	var deadline int64
	if limit > 0 {
		deadline = e.mono(w.start) + int64(limit)
		w.lctx = deadlinectx.NewLazy(ctx, w.start.Add(limit))
		ctx = w.lctx
	}
	w.state.Store(pack(g, running))
	if !j.tk.begin(w, g) {
		// Cancelled while queued: the cancellation completed the Future.
		w.settle(g)
		w.clear()
		return
	}
	if limit > 0 {
		w.deadline.Store(deadline)
		w.arm(deadline, limit)
	}
	v, err := w.invoke(ctx, g)
	w.finish(g, v, err)
}

// finish ends call g, which returned v and err: it answers the call unless
// an answerer got there first, applying the late rule, and counts it.
func (w *worker) finish(g uint64, v any, err error) {
	e := w.e
	j := &w.cur
	limit := j.call.Limit
	if limit > 0 {
		w.deadline.Store(0)
	}
	abandoned := w.settle(g)
	j.tk.end()
	if w.lctx != nil {
		w.lctx.Release()
	}
	if abandoned {
		e.abandoned.Add(-1)
		if e.logger.IsDebug() { // its arguments cost allocations
			e.logger.Debug("abandoned call returned", "task", j.call.Name(), "run", j.call.RunID,
				"attempt", j.call.Attempt, "ran", time.Since(w.start), "error", err)
		}
		w.clear()
		return
	}
	// The worker has claimed the answer (settle): the moment it reads the
	// clock now is when the executor observed the return. The timer
	// answers only calls it claims before that, at or after their deadline.
	if limit > 0 {
		if te := deadlinectx.Late(j.call.Name(), limit, w.start, time.Now(), executor.Soft); te != nil {
			v, err = nil, te
		}
	}
	if err != nil && j.ctx != nil {
		if cerr := deadlinectx.CallerEnded(j.call.Name(), j.ctx, err); cerr != err {
			v, err = nil, cerr // the task gave up because its caller did
		}
	}
	w.count(err)
	if j.promise == (executor.Promise{}) {
		if pe := panicOf(err); pe != nil {
			e.logger.Error("call submitted with Go panicked", "task", j.call.Name(),
				"run", j.call.RunID, "attempt", j.call.Attempt, "error", err, "stack", string(pe.Stack))
		}
	} else {
		j.promise.SetWorker(w.name)
		e.finishing.Add(1)
		j.promise.Complete(v, err)
		e.finishing.Add(-1)
	}
	w.clear()
}

// settle ends call g and reports whether it had been answered by someone
// else (and so was abandoned).
func (w *worker) settle(g uint64) bool {
	if w.state.CompareAndSwap(pack(g, running), pack(g, idle)) {
		return false
	}
	// An answerer or Shutdown's inspection got there first; under the
	// mutex the state is running again or answered.
	w.mu.Lock()
	abandoned := phaseOf(w.state.Load()) == answered
	w.state.Store(pack(g, idle))
	w.mu.Unlock()
	return abandoned
}

func (w *worker) count(err error) {
	switch {
	case err == nil:
		w.succeeded.Add(1)
	case executor.ClassOf(err) == executor.ClassTimeout:
		w.e.timedOut.Add(1)
	case executor.ClassOf(err) == executor.ClassCanceled:
		w.e.canceled.Add(1)
	default:
		w.failed.Add(1)
	}
}

// clear drops the finished call's limit context. The call itself stays in
// cur until the worker's next pop overwrites it, or until the worker goes
// idle (Executor.next), so an idle worker holds no input or context of a
// call: zeroing it after every call as well cost a few percent of a no-op
// call.
func (w *worker) clear() {
	w.lctx = nil
}

// forget drops the cached call context as the worker ends.
func (w *worker) forget() {
	w.cc, w.ccParent, w.ccHandler, w.ccLogger = nil, nil, nil, nil
	w.ctxs.Drop()
}

// callContext returns the context that carries j's identity and logger:
// the one Submit made with the Future, or for Go, the worker's cached one
// when the call's identity is the previous call's.
func (w *worker) callContext(j *job) context.Context {
	if j.cctx != nil {
		return j.cctx
	}
	c := &j.call
	if w.cc != nil && sameIface(w.ccParent, j.ctx) && w.ccHandler == c.Handler &&
		w.ccRun == c.RunID && w.ccAttempt == c.Attempt && sameIface(w.ccLogger, c.Logger) {
		return w.cc
	}
	w.cc = w.ctxs.WithCall(j.ctx, c)
	w.ccParent, w.ccHandler, w.ccRun, w.ccAttempt, w.ccLogger = j.ctx, c.Handler, c.RunID, c.Attempt, c.Logger
	return w.cc
}

// sameIface reports whether two interface values hold the very same
// dynamic type and data word. Unlike ==, it never panics on a value of an
// incomparable type; it may report false for equal values, which only
// costs a new call context.
func sameIface[T any](a, b T) bool {
	type iface struct{ tab, data unsafe.Pointer }
	return *(*iface)(unsafe.Pointer(&a)) == *(*iface)(unsafe.Pointer(&b))
}

// cancel answers call g with a cancellation if it is still running
// unanswered. The submitter's context's cancellation calls it, on the
// goroutine of context.AfterFunc; it answers and logs after releasing the
// worker's mutex.
func (w *worker) cancel(g uint64) {
	e := w.e
	w.mu.Lock()
	if !w.state.CompareAndSwap(pack(g, running), pack(g, answered)) {
		w.mu.Unlock()
		return // returned, or answered at its limit
	}
	c := w.cur.call
	p, ctx, ran := w.cur.promise, w.cur.ctx, time.Since(w.start)
	e.canceled.Add(1)
	e.abandoned.Add(1)
	w.mu.Unlock()
	complete(p, w.name, nil, executor.NewCanceledError(c.Name(), ctx))
	e.logger.Warn("call abandoned: its caller cancelled it and its work is still running",
		"task", c.Name(), "run", c.RunID, "attempt", c.Attempt, "ran", ran, "worker", w.name)
}

// describe names the call w is running, if any, as Call.String does.
func (w *worker) describe() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.state.Load()
	switch phaseOf(s) {
	case answered:
		return w.cur.call.String(), true
	case running:
		// Hold the worker in its call while reading it; it waits on the
		// mutex if it returns meanwhile.
		if !w.state.CompareAndSwap(s, pack(s>>2, held)) {
			return "", false
		}
		name := w.cur.call.String()
		w.state.Store(s)
		return name, true
	}
	return "", false
}

// panicOf returns err as a *executor.PanicError, or nil. It allocates only
// when err is not nil.
func panicOf(err error) *executor.PanicError {
	if err == nil {
		return nil
	}
	var pe *executor.PanicError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// complete completes p, if there is one, naming the worker if any.
func complete(p executor.Promise, worker string, v any, err error) {
	if p == (executor.Promise{}) {
		return
	}
	if worker != "" {
		p.SetWorker(worker)
	}
	p.Complete(v, err)
}

// ticket follows a call whose submitter's context can be cancelled, from
// Submit to its end, so that the cancellation answers it at once: while it
// is queued (it then never runs) and while it runs.
type ticket struct {
	state   atomic.Uint32 // tkSubmitting ... tkEarly
	e       *Executor
	ctx     context.Context
	promise executor.Promise
	task    string
	stop    func() bool // unregisters fire from ctx

	// Set by the worker before the ticket moves to tkRunning.
	w   *worker
	gen uint64
}

const (
	tkSubmitting uint32 = iota // being put in the queue
	tkQueued                   // in the queue
	tkRunning                  // started by a worker
	tkOver                     // answered, or never accepted
	tkEarly                    // its context ended while it was being put in the queue
)

func newTicket(e *Executor, ctx context.Context, p executor.Promise, task string) *ticket {
	tk := &ticket{e: e, ctx: ctx, promise: p, task: task}
	tk.stop = context.AfterFunc(ctx, tk.fire)
	return tk
}

// fire runs once the submitter's context ends.
func (tk *ticket) fire() {
	for {
		switch s := tk.state.Load(); s {
		case tkSubmitting:
			// Submit decides: it refuses the call, or completes it.
			if tk.state.CompareAndSwap(s, tkEarly) {
				return
			}
		case tkQueued:
			if tk.state.CompareAndSwap(s, tkOver) {
				tk.e.canceled.Add(1)
				complete(tk.promise, "", nil, executor.NewCanceledError(tk.task, tk.ctx))
				return
			}
		case tkRunning:
			tk.w.cancel(tk.gen)
			return
		default:
			return
		}
	}
}

// withdraw marks a call that Submit did not put in the queue.
func (tk *ticket) withdraw() {
	if tk != nil {
		tk.state.Store(tkOver)
		tk.stop()
	}
}

// queued marks the call as put in the queue and reports whether its
// context ended meanwhile, in which case Submit completes it as cancelled.
func (tk *ticket) queued() (cancelled bool) {
	if tk == nil || tk.state.CompareAndSwap(tkSubmitting, tkQueued) {
		return false
	}
	return tk.state.CompareAndSwap(tkEarly, tkOver)
}

// claim takes a call that has not started away from its cancellation, for
// Shutdown, and reports whether it did; false means the cancellation has
// it. A nil ticket (a context that cannot be cancelled) is always claimed.
func (tk *ticket) claim() bool {
	if tk == nil {
		return true
	}
	if !tk.take(tkOver) {
		return false
	}
	tk.stop()
	return true
}

// take moves a call that has not started (tkSubmitting or tkQueued) to
// to, and reports whether it did. The submitter moves it from
// tkSubmitting to tkQueued at any moment, even after a worker has popped
// it, so the two states are tried in a loop on one reading of the state:
// two compare-and-swaps in a row would both fail when that move falls
// between them, and the call would be dropped as if cancelled.
func (tk *ticket) take(to uint32) bool {
	for {
		s := tk.state.Load()
		if s != tkSubmitting && s != tkQueued {
			return false
		}
		if tk.state.CompareAndSwap(s, to) {
			return true
		}
	}
}

// begin marks the call as started by w as call g, and reports false if
// its cancellation came first.
func (tk *ticket) begin(w *worker, g uint64) bool {
	if tk == nil {
		return true
	}
	tk.w, tk.gen = w, g
	return tk.take(tkRunning)
}

// end unregisters the cancellation once the call has returned.
func (tk *ticket) end() {
	if tk != nil {
		tk.stop()
	}
}
