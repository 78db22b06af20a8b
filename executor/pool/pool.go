// Package pool is the bounded worker-pool executor: at most a fixed number
// of workers run calls taken from a bounded FIFO queue. Pick it to run
// many in-process tasks at a bounded concurrency, the way most programs run
// flowline day to day; pick executor/local to debug one task at a time, and
// executor/subprocess when a runaway task must really be stopped.
//
// Timeouts are soft and honest. A call's limit counts from the moment a
// worker starts it, not while it waits in the queue. At the limit the
// call's context is cancelled with an *executor.TimeoutError as its cause
// and the caller gets that error within a few milliseconds, whatever the
// task does. A task that ignores its context cannot be stopped: it is
// abandoned, counted in Stats.Abandoned, logged once at Warn, and it keeps
// its worker until it really returns, so no more than Workers goroutines
// ever run task code at once. Options.MaxAbandoned can make Submit refuse
// work while too many workers are held that way.
//
// Limits that never fire are cheap: no context.WithTimeout and no new
// timer per call. Each worker has one runtime timer of its own, armed
// lazily (a call whose deadline is after the one the timer is armed for
// leaves it alone, and the timer re-arms itself when it fires early), and
// a call's context materialises its cancellation machinery only if the
// task asks for it. At a deadline the worker's timer answers the call on
// the goroutine the runtime starts for it, with no scan and no further
// hand-off, so a timeout is as prompt as a context.WithTimeout.
//
// A worker's goroutine starts when a call is handed to an idle worker and
// ends when the queue stays empty for about a microsecond (it looks again
// that long before going idle, and submitters leave it their calls
// meanwhile, so that a submitter feeding many workers short tasks keeps
// the ones it has busy instead of starting a goroutine per call), so an
// idle pool holds no goroutine but the one that waits to end it, and a
// busy one never parks and wakes a goroutine per call. A call is never
// left queued while a worker is idle and no other worker is about to take
// it.
//
// A call whose return its worker observes at or after its deadline is late
// (the rule of executor.TimeoutHandler) and answered with the
// *executor.TimeoutError, even if the timer has not fired yet; one
// observed before it keeps its result, even if the timer fires while it
// is delivered. Timeouts are answered and logged outside every lock, so a
// blocking OnDone callback or logger delays only its own call. A task that calls runtime.Goexit is
// answered as an *executor.PanicError matching executor.ErrGoexit, and a
// new goroutine takes its worker's place.
//
// Three ways in, following the backpressure rule of
// executor.TimeoutHandler: Submit waits for room in the queue while its
// context allows (and returns exactly ctx.Err() if it ends first),
// TrySubmit (executor.TrySubmitter) fails at once with
// executor.ErrQueueFull, and Go is Submit without a Future, for work whose
// outcome the caller does not need.
//
// Measured against errgroup, conc, ants and pond in the bench module
// (bench/cmd/poolbench); docs/benchmarks.md has the numbers.
package pool

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
)

// DefaultQueue is the least queue length used when Options.Queue is zero;
// with more than DefaultQueue/2 workers the default is the largest power
// of two not above two calls per worker (so between one and two calls per
// worker, and the queue's slots are exactly that many). A queue shorter
// than the worker count cannot keep the workers fed when calls end in
// waves; a queue much longer only holds back a producer that outruns the
// workers later, and costs memory the garbage collector scans.
const DefaultQueue = 1024

// ErrTooManyAbandoned is returned (wrapped, with the counts) by Submit,
// TrySubmit and Go while Options.MaxAbandoned calls or more are abandoned
// and still running:
// their workers are held until they return, and a new call would wait
// behind them instead of running.
var ErrTooManyAbandoned = errors.New("executor/pool: too many abandoned calls still running")

// errShutdown is the Err of the *executor.CanceledError that completes a
// call still queued when Shutdown begins: it matches both executor.ErrClosed
// and context.Canceled.
var errShutdown = fmt.Errorf("executor/pool: shut down before the call started: %w: %w",
	executor.ErrClosed, context.Canceled)

// Options configure an Executor. The zero value is ready to use.
type Options struct {
	// Workers is the number of workers, and so the most calls that run
	// task code at once, abandoned ones included. Zero or less means
	// runtime.GOMAXPROCS(0). Each worker has a goroutine only while it
	// has calls to run.
	Workers int

	// Queue is how many accepted calls may wait for a worker. Zero means
	// DefaultQueue, or for more than DefaultQueue/2 workers the largest
	// power of two not above 2*Workers; a negative value means no queue:
	// Submit waits until a worker is idle, and TrySubmit succeeds only if
	// one is.
	Queue int

	// MaxAbandoned, when positive, makes Submit, TrySubmit and Go fail at
	// once with an error matching ErrTooManyAbandoned while that many calls
	// or more are abandoned (answered with a timeout or a cancellation but
	// still running, each holding its worker). It is checked when the call
	// is submitted. Zero or less means no cap.
	MaxAbandoned int

	// Logger receives the executor's own messages (an abandoned call, a
	// panic in a call submitted with Go), named "pool". Nil means no
	// logging. Task log lines go to each Call's Logger instead.
	Logger hclog.Logger
}

// Executor runs calls on a bounded set of workers. The zero value is not
// usable: call New. All methods are safe for concurrent use.
type Executor struct {
	closing chan struct{} // closed when Shutdown begins: wakes submitters waiting for room
	closed  atomic.Bool   // set when Shutdown begins; the fast, unlocked check
	workers []*worker
	logger  hclog.Logger
	maxAbd  int64
	epoch   time.Time // deadlines are kept as nanoseconds since epoch

	_         [64]byte      // keep the submitters' counter off the line above
	submitted atomic.Uint64 // written by submitters only
	_         [56]byte
	// Rare events, shared by all workers.
	timedOut, canceled atomic.Uint64
	abandoned          atomic.Int64
	// finishing counts workers completing a call (running its Future's
	// OnDone callbacks), each about to take the next queued call, and
	// looking those that found the queue empty and look at it again for a
	// moment before they go idle (see next): calls up to their number are
	// left queued for them, with no lock taken and no goroutine started
	// (see pushed and balanceLocked).
	finishing atomic.Int32
	looking   atomic.Int32

	// The queue, pushed to and popped from without a lock.
	ring *ring
	// Mirrors of len(idle) and of room != nil, written under mu, read
	// without it: a submitter that finds no idle worker pushes to the
	// queue, and a worker that finds no submitter waiting for room pops,
	// without the mutex.
	idleN    atomic.Int64
	roomOpen atomic.Bool

	// The workers' goroutines. A worker without a goroutine is idle;
	// while one is, the queue holds no more calls than there are workers
	// finishing or looking to take them, once the submitter that pushed a
	// call as the worker went idle has seen it (see enqueue and next).
	mu          sync.Mutex
	idle        []*worker      // workers without a goroutine, last to stop on top
	live        int            // worker goroutines running
	stopping    bool           // Shutdown has begun (the locked check)
	waiters     int            // submitters waiting for room
	room        chan struct{}  // closed (and dropped) when room appears for waiters
	gone        bool           // workersGone is closed
	workersGone chan struct{}  // closed once stopping and no worker goroutine is left
	drained     chan struct{}  // closed by watch as it ends, after the workers and answers
	answers     sync.WaitGroup // goroutines delivering timeouts (see worker.expire)
	forgetOnce  sync.Once
}

var (
	_ executor.Executor     = (*Executor)(nil)
	_ executor.TrySubmitter = (*Executor)(nil)
)

// New returns an Executor and starts the goroutine that ends it; workers'
// goroutines start as calls arrive. Call Shutdown to stop them.
func New(opts Options) *Executor {
	n := opts.Workers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	q := opts.Queue
	switch {
	case q == 0:
		q = max(DefaultQueue, 1<<(bits.Len(uint(2*n))-1))
	case q < 0:
		q = 0
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	e := &Executor{
		ring:        newRing(q),
		idle:        make([]*worker, 0, n),
		closing:     make(chan struct{}),
		workers:     make([]*worker, n),
		logger:      logger.Named("pool"),
		maxAbd:      int64(max(opts.MaxAbandoned, 0)),
		epoch:       time.Now(),
		drained:     make(chan struct{}),
		workersGone: make(chan struct{}),
	}
	// The workers and their names come from one allocation each, not two
	// per worker (strconv.Itoa allocates from 100 on).
	ws := make([]worker, n)
	names := make([]byte, 0, n*len("pool/"+strconv.Itoa(n)))
	ends := make([]int, n)
	for i := range ws {
		names = append(names, "pool/"...)
		names = strconv.AppendInt(names, int64(i), 10)
		ends[i] = len(names)
	}
	all := string(names)
	for i := range ws {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		ws[i].e, ws[i].name = e, all[start:ends[i]]
		e.workers[i] = &ws[i]
	}
	for i := n - 1; i >= 0; i-- {
		e.idle = append(e.idle, e.workers[i]) // pool/0 on top
	}
	e.idleN.Store(int64(n))
	go e.watch()
	return e
}

// Enforcement returns executor.Soft.
func (e *Executor) Enforcement() executor.Enforcement { return executor.Soft }

// job is one accepted call on its way to a worker. It travels by value
// through the queue, so queueing a call allocates nothing.
type job struct {
	call    executor.Call
	ctx     context.Context  // the submitter's
	cctx    context.Context  // ctx with the call's identity, made with the promise; nil for Go
	promise executor.Promise // zero for Go
	tk      *ticket          // nil when ctx cannot be cancelled
}

// Submit queues call and returns its Future. It waits for room in the
// queue while ctx allows; if ctx ends first it fails with exactly ctx.Err()
// and the call is not accepted; it never fails with executor.ErrQueueFull. It fails with executor.ErrClosed after Shutdown
// has begun (also while waiting for room), with an error matching
// ErrTooManyAbandoned when the Options.MaxAbandoned cap is reached, and
// with an error for a Call without a Handler.
//
// Once accepted, everything is reported by the Future:
//   - a ctx that had already ended gives a Future completed with an
//     *executor.CanceledError; the task does not run;
//   - cancelling ctx while the call is queued completes it at once with an
//     *executor.CanceledError, and it never runs;
//   - cancelling ctx while it runs cancels the task's context and answers
//     at once with an *executor.CanceledError (or with what the task
//     returned, if it returned first); a task that has not returned by
//     then is abandoned and keeps its worker until it returns;
//   - a call still queued when Shutdown begins completes with an
//     *executor.CanceledError whose error matches both executor.ErrClosed
//     and context.Canceled; it never runs;
//   - a call that overruns Call.Limit completes with an
//     *executor.TimeoutError at the limit (see the package comment);
//   - a panic in the task completes it with an *executor.PanicError.
//
// Future.Worker names the worker that ran the call, as "pool/3".
func (e *Executor) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	return e.submit(ctx, call, true)
}

// TrySubmit is Submit without waiting: when the queue is full (or, with no
// queue, when no worker is idle) it fails at once with
// executor.ErrQueueFull and the call is not accepted.
func (e *Executor) TrySubmit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	return e.submit(ctx, call, false)
}

func (e *Executor) submit(ctx context.Context, call executor.Call, wait bool) (*executor.Future, error) {
	if call.Handler == nil {
		return nil, errors.New("executor/pool: Submit with a nil Handler")
	}
	if err := e.admit(); err != nil {
		return nil, err
	}
	// One allocation for the Future and the call's context.
	p, cctx := executor.Prepare(ctx, &call)
	j := job{call: call, ctx: ctx, cctx: cctx, promise: p}
	if err := e.enqueue(ctx, &j, wait); err != nil {
		return nil, err
	}
	return p.Future(), nil
}

// Go runs call like Submit but without a Future: it allocates nothing of
// its own for a call that needs no cancellation or deadline machinery, for
// fire-and-forget work whose outcome the caller observes by other means
// (the task's own effects, Stats). It waits for room and fails exactly as
// Submit does; once it returns nil the call is accepted. The call's result
// and error are dropped after being counted in Stats; a panic is logged at
// Error on the executor's logger, since nobody else will see it.
func (e *Executor) Go(ctx context.Context, call executor.Call) error {
	if call.Handler == nil {
		return errors.New("executor/pool: Go with a nil Handler")
	}
	if err := e.admit(); err != nil {
		return err
	}
	j := job{call: call, ctx: ctx}
	return e.enqueue(ctx, &j, true)
}

// admit refuses a call after Shutdown or over the abandoned cap.
func (e *Executor) admit() error {
	if e.closed.Load() {
		return executor.ErrClosed
	}
	if e.maxAbd > 0 {
		if n := e.abandoned.Load(); n >= e.maxAbd {
			return fmt.Errorf("%w (%d abandoned, cap %d)", ErrTooManyAbandoned, n, e.maxAbd)
		}
	}
	return nil
}

// enqueue puts j in the queue, waiting for room if wait is set.
//
// Its fast path takes no lock: while no worker is idle, or while some
// worker is finishing a call or looking at the queue (it will take a
// queued call in a moment), it pushes to the ring. A worker that goes
// idle publishes it (idleN) and stops counting as looking before it looks
// at the ring a last time, and a submitter looks at idleN and the counts
// after its push, so one of them sees the other: the worker takes the
// call, or the submitter starts an idle worker for it (pushed, balance).
// The same handshake with closed keeps a call pushed while Shutdown
// begins from being left in the queue.
func (e *Executor) enqueue(ctx context.Context, j *job, wait bool) error {
	done := ctx.Done()
	if done != nil {
		if ctx.Err() != nil {
			// Accepted and cancelled at once, as the contract asks; the
			// task does not run.
			e.submitted.Add(1)
			e.canceled.Add(1)
			complete(j.promise, "", nil, executor.NewCanceledError(j.call.Name(), ctx))
			return nil
		}
		j.tk = newTicket(e, ctx, j.promise, j.call.Name())
	}
	if (e.idleN.Load() == 0 || e.takers() > 0) && e.ring.push(j) {
		e.pushed(ctx, j)
		return nil
	}
	waited := false
	for {
		e.mu.Lock()
		if waited {
			e.waiters--
		}
		if e.stopping {
			e.mu.Unlock()
			j.tk.withdraw()
			return executor.ErrClosed
		}
		if len(e.idle) > 0 && e.ring.limit == 0 {
			// No queue: hand the call to an idle worker.
			w := e.popIdleLocked()
			w.cur = *j
			start := w.starter()
			e.mu.Unlock()
			go start()
			e.accepted(ctx, j)
			return nil
		}
		if e.ring.push(j) {
			// Behind the calls already queued, in order; then give idle
			// workers what the queue holds.
			e.balanceLocked()
			e.mu.Unlock()
			e.accepted(ctx, j)
			return nil
		}
		if !wait {
			e.mu.Unlock()
			j.tk.withdraw()
			return executor.ErrQueueFull
		}
		if e.room == nil {
			e.room = make(chan struct{})
			e.roomOpen.Store(true)
		}
		room := e.room
		e.waiters++
		// A slot may have been freed between the push above and the
		// flag: a worker that popped before it saw the flag up has not
		// woken us.
		if e.ring.push(j) {
			e.waiters--
			e.balanceLocked()
			e.mu.Unlock()
			e.accepted(ctx, j)
			return nil
		}
		e.mu.Unlock()
		select {
		case <-room:
			waited = true
		case <-done:
			e.mu.Lock()
			e.waiters--
			e.mu.Unlock()
			j.tk.withdraw()
			return ctx.Err()
		case <-e.closing:
			waited = true // and the next round refuses the call
		}
	}
}

// pushed follows a push made without the mutex: it starts idle workers if
// one went idle meanwhile and the queue holds more calls than the workers
// finishing or looking will take, answers queued calls if Shutdown began
// meanwhile, and counts the call.
func (e *Executor) pushed(ctx context.Context, j *job) {
	if e.idleN.Load() > 0 && e.ring.len() > e.takers() {
		e.mu.Lock()
		e.balanceLocked()
		e.mu.Unlock()
	}
	if e.closed.Load() {
		e.cancelAllQueued()
	}
	e.accepted(ctx, j)
}

// balanceLocked hands queued calls to idle workers and starts them, so
// that no worker is idle while a call waits, but for the calls left to
// workers completing one or looking at the queue (see takers). After
// Shutdown has begun it starts nothing: the calls left are answered as
// cancelled instead.
func (e *Executor) balanceLocked() {
	// Calls up to the number of workers completing one or looking at the
	// queue stay queued for them: they take the next queued call in a
	// moment, so a call submitted from an OnDone callback (a flow's next
	// task), or by a submitter feeding many workers short tasks, runs on
	// a goroutine that is running already, without a goroutine start and
	// a hand-off.
	for !e.stopping && len(e.idle) > 0 && e.ring.len() > e.takers() {
		w := e.idle[len(e.idle)-1]
		if !e.ring.pop(&w.cur) {
			return
		}
		e.popIdleLocked()
		start := w.starter()
		go start()
	}
}

// takers is how many workers will take a queued call in a moment: those
// finishing a call and those looking at the queue before they go idle.
func (e *Executor) takers() uint64 {
	return uint64(max(e.finishing.Load()+e.looking.Load(), 0))
}

// popIdleLocked takes the idle worker on top and counts its goroutine.
func (e *Executor) popIdleLocked() *worker {
	w := e.idle[len(e.idle)-1]
	e.idle = e.idle[:len(e.idle)-1]
	e.idleN.Store(int64(len(e.idle)))
	e.live++
	return w
}

// cancelAllQueued answers every call in the queue as cancelled by
// Shutdown. Whoever pops a call after Shutdown began does it: Shutdown
// itself, a submitter whose push raced with it, or a worker.
func (e *Executor) cancelAllQueued() {
	var j job
	for e.ring.pop(&j) {
		e.cancelQueued(&j)
	}
	j = job{}
}

// accepted counts a call that is in the queue or on a worker, and answers
// it if its context ended while it was being queued.
func (e *Executor) accepted(ctx context.Context, j *job) {
	e.submitted.Add(1)
	if j.tk.queued() {
		// The worker that takes it will skip it.
		e.canceled.Add(1)
		complete(j.promise, "", nil, executor.NewCanceledError(j.call.Name(), ctx))
	}
}

// next gives w the next queued call, or makes w idle and reports false.
// A call popped after Shutdown began is answered as cancelled, not run.
func (e *Executor) next(w *worker) bool {
	if e.take(w) {
		return true
	}
	// Before going idle, look again for a while: a submitter that keeps
	// the workers fed pushes its next call within a few hundred
	// nanoseconds, which this worker then takes from the queue without a
	// lock. Gone idle, it would make that submitter take the mutex and
	// start a goroutine for the call instead; with many workers and short
	// tasks the pool would then start a goroutine for nearly every call.
	// Without a queue (Options.Queue < 0) calls come only by hand-off.
	// While it looks it counts in looking, so that submitters leave it a
	// call rather than start an idle worker for it (see pushed).
	looks := e.ring.limit > 0
	if looks {
		e.looking.Add(1)
		for i := 0; i < idleSpins; i++ {
			if i == idleSpins/2 {
				runtime.Gosched() // let a submitter on this P push
			}
			if e.ring.len() == 0 {
				continue
			}
			// Stop counting as looking before the pop: a submitter
			// that reads the queue's length after it then reads a count
			// without this worker, and starts an idle worker for its
			// call rather than leave it queued behind the one this
			// worker is about to run (see pushed).
			e.looking.Add(-1)
			if e.take(w) {
				return true
			}
			e.looking.Add(1)
		}
	}
	e.mu.Lock()
	e.idle = append(e.idle, w)
	e.idleN.Store(int64(len(e.idle)))
	if looks {
		// Before the last look: a submitter that saw this worker looking
		// left its call for it, and one that sees it no longer looking,
		// under the mutex or after this store, starts a worker for it.
		e.looking.Add(-1)
	}
	e.live--
	// A last look, now that submitters can see w idle: a call pushed
	// before they could is taken here, or by balance.
	if !e.stopping && e.ring.pop(&w.cur) {
		e.popIdleLocked() // w is still on top: the mutex was held
		e.mu.Unlock()
		if e.popped() {
			return true
		}
		e.cancelQueued(&w.cur)
		w.cur = job{}
		return e.next(w)
	}
	if e.waiters > 0 {
		e.wakeRoomLocked() // an idle worker is room when there is no queue
	}
	last := e.stopping && e.live == 0 && !e.gone
	if last {
		e.gone = true
	}
	e.mu.Unlock()
	if last {
		close(e.workersGone)
	}
	return false
}

// idleSpins is how many times a worker that finds the queue empty looks
// at it again before it goes idle (see next): about a microsecond.
const idleSpins = 64

// take gives w the next queued call that may run, and reports whether
// there was one; calls popped after Shutdown began are answered as
// cancelled on the way. It leaves w.cur zero when it reports false.
func (e *Executor) take(w *worker) bool {
	for e.ring.pop(&w.cur) {
		if e.popped() {
			return true
		}
		e.cancelQueued(&w.cur)
		w.cur = job{}
	}
	w.cur = job{}
	return false
}

// popped follows a worker's pop: it wakes waiting submitters once half
// the queue is free (not at every call, so that a producer that outruns
// the workers sleeps once per half queue), and reports whether the call
// may run: false once Shutdown has begun.
func (e *Executor) popped() bool {
	if e.roomOpen.Load() && e.ring.len() <= e.ring.limit/2 {
		// The first worker here wakes them all; the others find the
		// flag down and take no lock.
		e.mu.Lock()
		e.wakeRoomLocked()
		e.mu.Unlock()
	}
	return !e.closed.Load()
}

func (e *Executor) wakeRoomLocked() {
	if e.room != nil {
		close(e.room)
		e.room = nil
		e.roomOpen.Store(false)
	}
}

// cancelQueued completes a call taken from the queue after Shutdown began.
func (e *Executor) cancelQueued(j *job) {
	if !j.tk.claim() {
		return // its context's cancellation already completed it
	}
	e.canceled.Add(1)
	complete(j.promise, "", nil, &executor.CanceledError{Task: j.call.Name(), Err: errShutdown, Cause: errShutdown})
}

// Shutdown stops intake (Submit, TrySubmit and Go fail with
// executor.ErrClosed from then on, including those waiting for room),
// completes every call still queued with an *executor.CanceledError that
// matches executor.ErrClosed and context.Canceled, and waits for the calls
// that are running, abandoned ones included, and for the executor's
// goroutines. Limits keep being enforced meanwhile.
//
// If ctx ends first it returns an *executor.ShutdownError naming the calls
// still running; their workers, and the timers that enforce their
// limits, live on until the calls return, and a later Shutdown waits for
// them again. Shutdown starts no goroutine, so giving up leaves nothing
// waiting behind. It may be called any number of times.
func (e *Executor) Shutdown(ctx context.Context) error {
	var queued []job
	e.mu.Lock()
	if !e.stopping {
		e.stopping = true
		e.closed.Store(true)
		close(e.closing)
		// Answer queued calls now, even if every worker is held by an
		// abandoned call.
		var j job
		for e.ring.pop(&j) {
			queued = append(queued, j)
		}
		if e.live == 0 {
			e.gone = true
			close(e.workersGone)
		}
	}
	e.mu.Unlock()
	for i := range queued {
		e.cancelQueued(&queued[i])
	}
	select {
	case <-e.drained:
	case <-ctx.Done():
		select {
		case <-e.workersGone:
			// Every call has returned; only timeouts being answered
			// are left, which take no time worth reporting unless an
			// OnDone callback blocks.
			select {
			case <-e.drained:
			case <-time.After(time.Millisecond):
				return &executor.ShutdownError{Running: e.running(), Err: ctx.Err()}
			}
		default:
			running := e.running()
			if len(running) == 0 {
				// Every call has returned and the last worker goroutines
				// are on their way out (or one is just starting a call
				// accepted before Shutdown): give them a moment.
				t := time.NewTimer(time.Millisecond)
				select {
				case <-e.workersGone:
					t.Stop()
					select {
					case <-e.drained:
					case <-time.After(time.Millisecond):
						return &executor.ShutdownError{Running: e.running(), Err: ctx.Err()}
					}
					e.forgetCaches()
					return nil
				case <-t.C:
				}
				running = e.running()
			}
			return &executor.ShutdownError{Running: running, Err: ctx.Err()}
		}
	}
	e.forgetCaches()
	return nil
}

// forgetCaches drops what the workers' caches hold, once no goroutine is
// left to touch them.
func (e *Executor) forgetCaches() {
	e.forgetOnce.Do(func() {
		for _, w := range e.workers {
			w.forget()
		}
	})
}

// running names the calls running now, sorted.
func (e *Executor) running() []string {
	var names []string
	for _, w := range e.workers {
		if s, ok := w.describe(); ok {
			names = append(names, s)
		}
	}
	slices.Sort(names)
	return names
}

// Stats returns a snapshot of the counters. Running counts the workers
// busy with a call, abandoned ones included; Submitted counts accepted
// calls. Counters are read one by one while calls go on, so a snapshot
// taken under load may be off by the calls that completed while it was
// taken.
func (e *Executor) Stats() executor.Stats {
	st := executor.Stats{
		Submitted: e.submitted.Load(),
		TimedOut:  e.timedOut.Load(),
		Canceled:  e.canceled.Load(),
		Abandoned: e.abandoned.Load(),
	}
	for _, w := range e.workers {
		st.Succeeded += w.succeeded.Load()
		st.Failed += w.failed.Load()
		if phaseOf(w.state.Load()) != idle {
			st.Running++
		}
	}
	return st
}

// Workers returns the number of worker goroutines.
func (e *Executor) Workers() int { return len(e.workers) }

// mono returns t as nanoseconds since the executor's epoch.
func (e *Executor) mono(t time.Time) int64 { return int64(t.Sub(e.epoch)) }
