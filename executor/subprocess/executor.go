package subprocess

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/internal/callstats"
)

// Executor runs calls in warm worker processes and enforces limits by
// killing them. The zero value is not usable: call New.
type Executor struct {
	opts   Options
	logger hclog.Logger
	path   string
	args   []string
	// startErr, when set, makes every worker start fail with it: the
	// program's path is unknown, or this process is itself a worker that
	// did not call ServeIfWorker.
	startErr error
	// foreignZombies says whether zombies that another process must reap
	// count as alive; they do when this process is a subreaper, because
	// then every orphan of a worker's group is this process's to reap.
	foreignZombies bool

	stats      callstats.Counters // Abandoned stays zero: see Stats
	closedFlag atomic.Bool
	// Direct calls whose result came on the direct pipe, and those whose
	// result moved to the results pipe after their logs (readDirect).
	directAnswers, movedAnswers atomic.Uint64

	mu       sync.Mutex
	closed   bool
	queue    []*job        // FIFO; jobs cancelled while queued stay until popped
	queued   int           // jobs in queue that still wait
	room     chan struct{} // closed (and dropped) when room appears for submitters waiting on it
	idle     []*worker
	live     map[*worker]struct{}
	slots    int           // slot goroutines alive
	drained  chan struct{} // closed once closed and slots == 0
	spawner  *spawner      // nil until the first worker starts
	seq      uint64
	slotsWG  sync.WaitGroup
	stopOnce sync.Once
}

var (
	_ executor.Executor     = (*Executor)(nil)
	_ executor.TrySubmitter = (*Executor)(nil)
)

// New returns an Executor. It starts nothing: workers start when calls
// need them. On Linux, unless opts.NoSubreaper is set, it makes this
// process a child subreaper (see the package documentation); if that
// fails, it logs a warning and goes on as with NoSubreaper.
//
// New fails with an *UnsupportedError, and returns no Executor, when this
// operating system cannot keep what opts ask for (Options.MemoryLimit
// outside Linux) or cannot run the executor at all: see the package
// documentation's table of operating systems.
func New(opts Options) (*Executor, error) {
	if err := supported(runtime.GOOS, opts); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	e := &Executor{
		opts:    opts,
		logger:  opts.Logger.Named("subprocess"),
		live:    make(map[*worker]struct{}),
		drained: make(chan struct{}),
		args:    opts.Args,
	}
	e.path = opts.Path
	if e.path == "" {
		p, err := os.Executable()
		if err != nil {
			e.startErr = fmt.Errorf("cannot find this program to start it as a worker: %w", err)
		}
		e.path = p
	}
	if e.args == nil && flag.Lookup("test.run") != nil { // a test binary: testing registered its flags
		e.args = []string{"-test.run=^$"}
	}
	if _, isWorker := os.LookupEnv(envWorker); isWorker {
		e.startErr = errors.New("this process was started as a worker but did not call subprocess.ServeIfWorker; " +
			"it starts no workers of its own, which would recurse")
	}
	if !opts.NoSubreaper {
		on, err := becomeSubreaper() // os_*.go: Linux only
		if err != nil {
			e.logger.Warn("cannot become a child subreaper; orphans of killed workers go to init", "error", err)
		}
		e.foreignZombies = on
	}
	return e, nil
}

// Enforcement returns executor.Hard.
func (e *Executor) Enforcement() executor.Enforcement { return executor.Hard }

type jobState uint8

const (
	jobNew jobState = iota
	jobQueued
	jobRunning
	jobDone
)

// job is one submitted call.
type job struct {
	call     executor.Call
	input    []byte
	logLevel hclog.Level
	promise  executor.Promise
	release  func() bool // stops the context.AfterFunc; nil without one

	// Under Executor.mu.
	state    jobState
	w        *worker // while running
	canceled error   // the cancellation to report, once the caller gave up
	seq      uint64
	start    time.Time
	deadline time.Time // zero without a limit
	output   hclog.Logger
	direct   bool // sent as a Direct call: its caller reads the direct pipe
}

// Submit hands call to an idle worker (writing it to the worker's pipe) or
// queues it for the next free one, and returns its Future; it never waits
// for a worker to finish a call. When Options.MaxQueue calls already wait,
// it waits for room while ctx allows: it fails with exactly ctx.Err() if
// ctx ends first, and with executor.ErrClosed if Shutdown begins; the call
// is then not accepted. It fails with executor.ErrClosed after Shutdown,
// and with an error for a Call without a Handler. The call's limit counts
// from the moment a worker takes it.
//
// A context that has already ended gives a Future with an
// *executor.CanceledError, and an input that does not encode (or whose
// encoding is over Options.MaxFrame) one with an *executor.InputError;
// neither starts anything. Cancelling ctx later removes a waiting call from
// the queue, or stops the running call's worker as a timeout does
// (SIGKILL, or SIGTERM and SIGKILL after the call's grace period if it has
// one; then reap) before the Future completes with an error matching
// context.Canceled.
func (e *Executor) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	f, _, err := e.submit(ctx, call, true, false)
	return f, err
}

// TrySubmit is Submit without the wait: when Options.MaxQueue calls
// already wait, it fails at once with executor.ErrQueueFull and the call
// is not accepted. Otherwise it is Submit.
func (e *Executor) TrySubmit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	f, _, err := e.submit(ctx, call, false, false)
	return f, err
}

// Run submits call and waits for its answer: exactly what Submit followed
// by Future.Wait(context.Background()) does, and what executor.Run calls.
// When an idle worker takes the call at once (on Linux and macOS), the
// worker sends the result on a pipe of its own that this goroutine reads
// itself, so that no other goroutine is woken to pass it on: that saves
// most of the wake-ups of a warm round trip (docs/benchmarks.md,
// Subprocess). A call that logs, or waits in the queue, is answered the
// usual way. Timeouts, cancellation and crashes are answered as for
// Submit, once the worker's process group is reaped.
func (e *Executor) Run(ctx context.Context, call executor.Call) (any, error) {
	f, j, err := e.submit(ctx, call, true, true)
	if err != nil {
		return nil, err
	}
	if j != nil {
		j.w.readDirect(j)
	}
	return f.Wait(context.Background())
}

// submit is Submit (wait) and TrySubmit. With direct, a job an idle worker
// takes at once is sent as a Direct call, and returned: its caller must
// read the worker's direct pipe (worker.readDirect).
func (e *Executor) submit(ctx context.Context, call executor.Call, wait, direct bool) (*executor.Future, *job, error) {
	if call.Handler == nil {
		return nil, nil, errors.New("executor/subprocess: Submit with a nil Handler")
	}
	if e.closedFlag.Load() {
		return nil, nil, executor.ErrClosed
	}
	if ctx.Err() != nil {
		err := executor.NewCanceledError(call.Name(), ctx)
		e.stats.Submitted.Add(1)
		e.stats.Ended(err)
		return executor.Completed(nil, err), nil, nil
	}
	input, err := call.Handler.EncodeInput(call.Input)
	if err == nil && len(input) > e.opts.MaxFrame-callOverhead(&call) {
		err = &executor.InputError{Task: call.Name(), Type: call.Handler.InputType().String(),
			Err: fmt.Errorf("encoded input of %d bytes is over the frame limit of %d bytes", len(input), e.opts.MaxFrame)}
	}
	if err != nil {
		e.stats.Submitted.Add(1)
		e.stats.Ended(err)
		return executor.Completed(nil, err), nil, nil
	}
	j := &job{call: call, input: input, logLevel: levelOf(call.Logger), promise: executor.NewPromise()}
	if ctx.Done() != nil {
		// j.call, not call: a closure over call would move it to the heap
		// for every Submit, with a context that never ends too.
		j.release = context.AfterFunc(ctx, func() { e.cancel(j, executor.NewCanceledError(j.call.Name(), ctx)) })
	}

	e.mu.Lock()
	for e.opts.MaxQueue > 0 && e.queued >= e.opts.MaxQueue && len(e.idle) == 0 && !e.closed && j.canceled == nil {
		if !wait {
			e.mu.Unlock()
			j.stopWatching()
			return nil, nil, executor.ErrQueueFull
		}
		if e.room == nil {
			e.room = make(chan struct{})
		}
		room := e.room
		e.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			j.stopWatching()
			return nil, nil, ctx.Err()
		}
		e.mu.Lock()
	}
	if e.closed {
		e.mu.Unlock()
		j.stopWatching()
		return nil, nil, executor.ErrClosed
	}
	if j.canceled != nil { // ctx ended since the check above
		j.state = jobDone
		e.stats.Submitted.Add(1)
		e.mu.Unlock()
		e.finish(j, nil, nil, j.canceled)
		return j.promise.Future(), nil, nil
	}
	if n := len(e.idle); n > 0 {
		w := e.idle[n-1]
		e.idle = e.idle[:n-1]
		e.stats.Submitted.Add(1)
		e.beginLocked(w, j)
		j.direct = direct && w.dir != nil
		e.mu.Unlock()
		w.send(j)
		if j.direct {
			return j.promise.Future(), j, nil
		}
		return j.promise.Future(), nil, nil
	}
	e.stats.Submitted.Add(1)
	j.state = jobQueued
	e.queue = append(e.queue, j)
	e.queued++
	if e.slots < e.opts.Workers {
		e.startSlotLocked()
	}
	e.mu.Unlock()
	return j.promise.Future(), nil, nil
}

// callOverhead bounds the bytes a Call frame holds besides its input.
func callOverhead(c *executor.Call) int {
	return 64 + len(c.Name()) + len(c.RunID)
}

// levelOf returns the level the worker gives a task's logger: Off when
// nothing would be logged.
func levelOf(l hclog.Logger) hclog.Level {
	if l == nil || !l.IsError() {
		return hclog.Off
	}
	if lv := l.GetLevel(); lv != hclog.NoLevel {
		return lv
	}
	return hclog.Trace
}

func (j *job) stopWatching() {
	if j.release != nil {
		j.release()
	}
}

// cancel handles the end of a job's context: a waiting job leaves the
// queue, a running one has its worker stopped.
func (e *Executor) cancel(j *job, err error) {
	e.mu.Lock()
	switch j.state {
	case jobNew:
		j.canceled = err // Submit reports it
	case jobQueued:
		j.state = jobDone
		e.queued--
		e.roomLocked()
		e.mu.Unlock()
		e.finish(j, nil, nil, err)
		return
	case jobRunning:
		j.canceled = err
		e.stopLocked(j.w, stopCancel, "")
	}
	e.mu.Unlock()
}

// beginLocked makes j the running call of the idle worker w.
func (e *Executor) beginLocked(w *worker, j *job) {
	e.seq++
	j.seq = e.seq
	j.state = jobRunning
	j.w = w
	j.start = time.Now()
	if j.call.Limit > 0 {
		j.deadline = j.start.Add(j.call.Limit)
		w.timer.Reset(j.call.Limit)
	}
	w.job = j
	e.stats.Running.Add(1)
}

// nextLocked gives the worker w, which has no call, the next waiting call,
// or makes it idle, or stops it after Shutdown. It returns the call to
// send, if any.
func (e *Executor) nextLocked(w *worker) *job {
	for len(e.queue) > 0 {
		j := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		if j.state != jobQueued {
			continue
		}
		e.queued--
		e.roomLocked()
		e.beginLocked(w, j)
		return j
	}
	if e.closed {
		e.stopLocked(w, stopShutdown, "")
		return nil
	}
	w.lastUsed = time.Now()
	e.idle = append(e.idle, w)
	return nil
}

// roomLocked wakes the submitters waiting for room in the queue (and for
// Shutdown); each checks again.
func (e *Executor) roomLocked() {
	if e.room != nil {
		close(e.room)
		e.room = nil
	}
}

// popLocked takes the first waiting call off the queue, or returns nil.
func (e *Executor) popLocked() *job {
	for len(e.queue) > 0 {
		j := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		if j.state == jobQueued {
			e.queued--
			e.roomLocked()
			j.state = jobDone
			return j
		}
	}
	return nil
}

// finish counts and completes j. ran says whether j was running (it then
// counted in Stats.Running).
func (e *Executor) finish(j *job, w *worker, value any, err error) {
	j.stopWatching()
	if w != nil {
		e.stats.Running.Add(-1)
		j.promise.SetWorker(w.name)
		j.promise.SetStarted(j.start)
	}
	e.stats.Ended(err)
	j.promise.Complete(value, err)
}

// Shutdown stops intake (Submit fails with executor.ErrClosed from then
// on), lets the calls already submitted run, then stops every worker
// (SIGKILL to its group, or SIGTERM and SIGKILL after Options.Grace if
// set) and reaps it, and
// waits for all of it. If ctx ends first it returns an
// *executor.ShutdownError naming the calls still running or waiting; they
// go on, and a later Shutdown waits again. Shutdown is safe to call more
// than once and concurrently.
func (e *Executor) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		e.closedFlag.Store(true)
		e.roomLocked() // waiting submitters fail with ErrClosed
		for _, w := range slices.Clone(e.idle) {
			e.stopLocked(w, stopShutdown, "")
		}
		if e.slots == 0 {
			close(e.drained)
		}
	}
	e.mu.Unlock()

	select {
	case <-e.drained:
		e.slotsWG.Wait()
		e.stopOnce.Do(func() {
			if e.spawner != nil {
				e.spawner.stop()
			}
		})
		return nil
	case <-ctx.Done():
	}
	e.mu.Lock()
	var names []string
	for w := range e.live {
		if w.job != nil {
			names = append(names, w.job.call.String())
		}
	}
	for _, j := range e.queue {
		if j.state == jobQueued {
			names = append(names, j.call.String())
		}
	}
	e.mu.Unlock()
	slices.Sort(names)
	return &executor.ShutdownError{Running: names, Err: ctx.Err()}
}

// Stats returns a snapshot of the counters. Abandoned is always zero: a
// hard executor answers a timed-out call only once its work is dead.
func (e *Executor) Stats() executor.Stats {
	return e.stats.Snapshot()
}

// spawner starts workers from one goroutine locked to its OS thread for
// the executor's life. Linux sends a child its parent-death signal
// (Pdeathsig) when the *thread* that forked it exits, not the process; Go
// retires a thread when a goroutine that locked it exits without
// unlocking, so a worker forked from an ordinary goroutine's thread could
// be killed by unrelated code. This thread exits only after every worker
// is reaped.
type spawner struct {
	reqs chan spawnRequest
	done chan struct{}
}

type spawnRequest struct {
	start func() error
	err   chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnRequest), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with the goroutine, after the
		// last worker it forked is dead.
		defer close(s.done)
		for r := range s.reqs {
			r.err <- r.start()
		}
	}()
	return s
}

// run runs start (an exec.Cmd's Start) on the spawner's thread.
func (s *spawner) run(start func() error) error {
	r := spawnRequest{start: start, err: make(chan error, 1)}
	s.reqs <- r
	return <-r.err
}

func (s *spawner) stop() {
	close(s.reqs)
	<-s.done
}

// startSlotLocked starts one more slot: a goroutine that keeps a worker
// process going.
func (e *Executor) startSlotLocked() {
	if e.spawner == nil {
		e.spawner = newSpawner()
	}
	e.slots++
	e.slotsWG.Add(1)
	go e.runSlot()
}

// runSlot starts a worker, serves calls with it until it stops, and
// replaces it while it is needed.
func (e *Executor) runSlot() {
	defer e.slotsWG.Done()
	for {
		w, err := e.startWorker()
		if err != nil {
			if !e.startFailed(err) {
				return
			}
			continue
		}
		hadJob := e.serve(w)
		if !e.again(w, hadJob) {
			return
		}
	}
}

// startFailed gives a start failure to the first waiting call, and reports
// whether the slot should try again (more calls wait).
func (e *Executor) startFailed(err *startError) bool {
	e.mu.Lock()
	j := e.popLocked()
	e.mu.Unlock()
	if j != nil {
		e.finish(j, nil, nil, &executor.CrashError{Task: j.call.Name(), Reason: "start: " + err.reason, Stderr: err.stderr})
	}
	e.logger.Debug("worker did not start", "error", err.reason)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.queued > 0 {
		return true
	}
	e.endSlotLocked()
	return false
}

// again reports whether the slot replaces the worker that just stopped:
// while calls wait, and eagerly after a worker that served calls was lost
// or recycled, unless the executor is closed or the worker was idle.
func (e *Executor) again(w *worker, hadJob bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.queued > 0 {
		return true
	}
	if !e.closed && (hadJob || w.reason == stopRecycle) {
		return true
	}
	e.endSlotLocked()
	return false
}

func (e *Executor) endSlotLocked() {
	e.slots--
	if e.closed && e.slots == 0 {
		close(e.drained)
	}
}
