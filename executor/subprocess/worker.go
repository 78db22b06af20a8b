package subprocess

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/subprocess/internal/proto"
	"github.com/flowline-go/flowline/internal/frame"
	"github.com/flowline-go/flowline/internal/wire"
)

// stopReason says why a worker is being stopped, which decides how.
type stopReason uint8

const (
	_ stopReason = iota // the zero value: not stopping
	// Graceful: SIGTERM to the group now and SIGKILL after the grace
	// period, or SIGKILL now without one.
	stopTimeout
	stopCancel
	stopIdle
	stopRecycle
	stopShutdown
	// Forceful: SIGKILL to the group now.
	stopProtocol
	stopMemory
	stopStart
	// The worker died by itself: wait for it, then SIGKILL what is left.
	stopCrash
)

var stopNames = [...]string{"", "timeout", "cancel", "idle", "recycle", "shutdown", "protocol", "memory", "start", "crash"}

func (r stopReason) String() string { return stopNames[r] }

func (r stopReason) graceful() bool { return r >= stopTimeout && r <= stopShutdown }

// worker is the parent's side of one worker process. Its fields after the
// first block are guarded by Executor.mu.
type worker struct {
	e      *Executor
	cmd    *exec.Cmd
	pid    int
	group  *group // its process tree: process group (Unix) or job (Windows)
	name   string
	logger hclog.Logger
	cancel context.CancelFunc // ends the Cmd's context: Cmd.Cancel sends SIGTERM to the group
	req    *os.File           // the worker's fd 3, our end
	resp   *os.File           // the worker's fd 4, our end
	in     io.Reader          // resp, polled for a while after each call sent (Options.Spin)
	dir    *os.File           // the worker's fd 5, our end: the direct pipe; nil on Windows
	dmu    sync.Mutex         // held by the caller reading dir (readDirect)
	dr     *frame.Reader      // reads dir, under dmu; made by the first readDirect
	out    *os.File           // the worker's stdout, our end
	errOut *os.File           // the worker's stderr, our end
	tail   tail
	timer  *time.Timer // the running call's deadline, waited on by serve
	hello  chan error  // the handshake's outcome, once
	exited chan struct{}
	events chan struct{} // wakes the slot when a stop is requested
	done   chan struct{} // closed once wg's goroutines have ended; made by stop
	wg     sync.WaitGroup
	sendMu sync.Mutex
	buf    []byte // the Call frame being sent, under sendMu
	state  *os.ProcessState

	job      *job
	last     *job // the last call that ran, for output read after it ended
	calls    int
	lastUsed time.Time
	stopping bool
	reason   stopReason
	detail   string // what broke, for stopProtocol and stopMemory
	stopAt   time.Time
	grace    time.Duration
}

// startError is why a worker could not start.
type startError struct {
	reason string
	stderr string
}

// startWorker starts a worker process and waits for its handshake.
func (e *Executor) startWorker() (*worker, *startError) {
	if e.startErr != nil {
		return nil, &startError{reason: e.startErr.Error()}
	}
	var files []*os.File // every pipe end, closed on failure
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	reqR, reqW, err1 := pipe()
	respR, respW, err2 := pipe()
	outR, outW, err3 := pipe()
	errR, errW, err4 := pipe()
	var dirR, dirW *os.File
	var err5 error
	if directPipe {
		dirR, dirW, err5 = pipe()
	}
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		closeAll()
		return nil, &startError{reason: fmt.Sprintf("pipes: %v", err)}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, e.path, e.args...)
	cmd.Env = append(os.Environ(), e.opts.Env...)
	cmd.Env = append(cmd.Env, envWorker+"="+workerSpec(os.Getpid(), e.opts.MaxFrame, e.opts.Spin))
	if raceEnabled {
		cmd.Env = raceEnv(cmd.Env)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	g := &group{}
	if err := g.prepare(cmd, reqR, respW, dirW); err != nil { // the pipes, a group of its own (os_*.go)
		cancel()
		closeAll()
		return nil, &startError{reason: err.Error()}
	}
	// Stopping a worker cancels ctx; Cancel then sends SIGTERM to the whole
	// group, grandchildren included. WaitDelay is left at zero: it is fixed
	// at Start, where a call's grace is per call, and it would SIGKILL the
	// leader only; the slot sends SIGKILL to the group itself.
	cmd.Cancel = g.term

	err := e.spawner.run(func() error {
		if err := cmd.Start(); err != nil {
			return err
		}
		if err := g.attach(cmd); err != nil { // Windows: into its job, then resumed
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return err
		}
		return nil
	})
	for _, f := range []*os.File{reqR, respW, outW, errW, dirW} {
		if f != nil {
			f.Close() // the child has its copies
		}
	}
	if err != nil {
		cancel()
		closeAll()
		g.release()
		return nil, &startError{reason: err.Error()}
	}
	w := &worker{
		e:      e,
		cmd:    cmd,
		pid:    cmd.Process.Pid,
		group:  g,
		cancel: cancel,
		req:    reqW,
		resp:   respR,
		in:     newSpinReader(respR, e.opts.Spin, false, e.spinWorthIt),
		dir:    dirR,
		out:    outR,
		errOut: errR,
		tail:   tail{max: e.opts.StderrTail},
		hello:  make(chan error, 1),
		exited: make(chan struct{}),
		events: make(chan struct{}, 1),
	}
	w.name = "pid " + strconv.Itoa(w.pid)
	w.logger = e.logger.With("worker", w.name)
	w.timer = time.NewTimer(time.Hour) // serve waits on it: at the deadline it kills at once, with no hand-off
	w.timer.Stop()
	w.wg.Add(4)
	go w.wait()
	go w.read()
	go w.stream(w.out, "stdout")
	go w.stream(w.errOut, "stderr")

	started := time.Now()
	t := time.NewTimer(e.opts.StartTimeout)
	defer t.Stop()
	var reason string
	select {
	case err := <-w.hello:
		if err == nil {
			w.logger.Debug("worker started", "startup", time.Since(started))
			return w, nil
		}
		reason = err.Error()
	case <-w.exited:
		reason = fmt.Sprintf("worker %s exited (%v) before its handshake", w.name, w.cmd.ProcessState)
	case <-t.C:
		reason = fmt.Sprintf("worker %s sent no handshake within %v", w.name, e.opts.StartTimeout)
	}
	e.mu.Lock()
	e.stopLocked(w, stopStart, "")
	e.mu.Unlock()
	w.stop()
	w.ended()
	return nil, &startError{
		reason: reason + "; does the program's main call subprocess.ServeIfWorker before anything else?",
		stderr: w.tail.String(),
	}
}

// spinWorthIt says whether a reader of results should poll: while at most
// one call runs. With more, this process has other work for its CPUs
// (and the workers theirs), none of them sleeps, and polling would take
// CPU from the workers.
func (e *Executor) spinWorthIt() bool { return e.stats.Running.Load() <= 1 }

// send writes j's Call frame to the worker. A write that fails means the
// worker is dying: the slot reports it.
func (w *worker) send(j *job) {
	c := proto.Call{
		Seq:      j.seq,
		Task:     j.call.Name(),
		RunID:    j.call.RunID,
		Attempt:  j.call.Identity().Attempt,
		Limit:    j.call.Limit,
		LogLevel: int(j.logLevel),
		Input:    j.input,

		TraceParent: j.call.TraceParent(),
		TraceState:  j.call.TraceState(),
		Spin:        w.e.opts.Spin > 0 && w.e.spinWorthIt(),
		Direct:      j.direct,
	}
	if !j.deadline.IsZero() {
		c.Deadline = j.deadline.UnixNano()
	}
	// The worker's answer can reach the reader goroutine, which sends the
	// next call, before this Write returns: the buffer needs its lock.
	w.sendMu.Lock()
	b, err := c.Append(w.buf[:0], w.e.opts.MaxFrame)
	if err == nil {
		_, err = w.req.Write(b)
	}
	if cap(b) <= 64<<10 {
		w.buf = b // keep small buffers only
	}
	w.sendMu.Unlock()
	if !j.direct {
		kick(w.in) // its result comes soon
	}
	if err != nil {
		w.e.mu.Lock()
		w.e.stopLocked(w, stopCrash, "")
		w.e.mu.Unlock()
	}
}

// stopLocked starts stopping w, once: the first reason wins.
func (e *Executor) stopLocked(w *worker, reason stopReason, detail string) {
	if w.stopping {
		return
	}
	w.stopping, w.reason, w.detail, w.stopAt = true, reason, detail, time.Now()
	w.grace = 0
	if reason.graceful() {
		w.grace = e.opts.Grace
		if w.job != nil && (reason == stopTimeout || reason == stopCancel) {
			w.grace = callGrace(w.job.call.Grace, e.opts.Grace)
		}
	}
	if i := indexOf(e.idle, w); i >= 0 {
		e.idle = append(e.idle[:i], e.idle[i+1:]...)
	}
	w.timer.Stop()
	switch {
	case reason.graceful() && w.grace > 0:
		w.cancel() // Cmd.Cancel: SIGTERM to the group
	case reason != stopCrash:
		// No grace: the work stops now, whatever it does with SIGTERM.
		_ = w.group.kill()
	}
	select {
	case w.events <- struct{}{}:
	default:
	}
}

// callGrace is the grace period of a call whose Call.Grace is g, on an
// executor whose Options.Grace is def: g if positive, none if negative,
// def if zero.
func callGrace(g, def time.Duration) time.Duration {
	switch {
	case g > 0:
		return g
	case g < 0:
		return 0
	}
	return def
}

func indexOf(ws []*worker, w *worker) int {
	for i, x := range ws {
		if x == w {
			return i
		}
	}
	return -1
}

// onDeadline runs when the running call's limit passes.
func (w *worker) onDeadline() {
	e := w.e
	e.mu.Lock()
	defer e.mu.Unlock()
	// The timer is stopped or reset under e.mu, which makes a stale firing
	// impossible (a channel timer's Stop and Reset drop what was due);
	// this check is a second line.
	if j := w.job; j != nil && !j.deadline.IsZero() && !time.Now().Before(j.deadline) {
		e.stopLocked(w, stopTimeout, "")
	}
}

// wait waits for the process and reports its exit.
func (w *worker) wait() {
	defer w.wg.Done()
	_ = w.cmd.Wait() // the reason is in ProcessState
	w.state = w.cmd.ProcessState
	close(w.exited)
	w.e.mu.Lock()
	w.e.stopLocked(w, stopCrash, "")
	w.e.mu.Unlock()
}

// read reads the worker's frames until its pipe ends or breaks.
func (w *worker) read() {
	defer w.wg.Done()
	r := frame.NewReader(w.in, w.e.opts.MaxFrame)
	handshaken := false
	for {
		kind, body, err := r.Next()
		at := time.Now() // when a result is observed, for the late rule
		if err == nil && !handshaken {
			err = w.handshake(kind, body)
			handshaken = true
			w.hello <- err
			if err != nil {
				return // the slot stops the worker
			}
			continue
		}
		if err == nil {
			switch kind {
			case proto.KindResult:
				err = w.onResult(body, at)
			case proto.KindLog:
				err = w.onLog(body)
			default:
				err = fmt.Errorf("unexpected frame of kind %q", kind)
			}
		}
		if err == nil {
			continue
		}
		reason, detail := stopProtocol, "protocol: "+describe(err)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) {
			reason, detail = stopCrash, "" // it died, perhaps while writing
		}
		if !handshaken && reason == stopProtocol { // a death before the handshake is the slot's to see
			w.hello <- fmt.Errorf("worker %s broke the protocol before its handshake: %s", w.name, describe(err))
		}
		w.e.mu.Lock()
		w.e.stopLocked(w, reason, detail)
		w.e.mu.Unlock()
		return
	}
}

// readDirect reads the direct pipe for the result of j, a Direct call,
// on the goroutine of Run's caller, and handles it as read does: this
// goroutine was the one waiting, so no other is woken. It returns once the
// result is handled, once a Moved frame says it went to the results pipe
// (read handles it there, after the call's logs), or once the pipe fails:
// the worker is then dying or stopping, and its stop answers j.
func (w *worker) readDirect(j *job) {
	w.dmu.Lock()
	defer w.dmu.Unlock()
	if w.dr == nil {
		w.dr = frame.NewReader(w.dir, w.e.opts.MaxFrame)
	}
	kind, body, err := w.dr.Next()
	at := time.Now() // when the result is observed, for the late rule
	if err == nil {
		switch kind {
		case proto.KindResult:
			if err = w.onResult(body, at); err == nil {
				w.e.directAnswers.Add(1)
			}
		case proto.KindMoved:
			var m proto.Moved
			if m, err = proto.DecodeMoved(body); err == nil && m.Seq != j.seq {
				err = fmt.Errorf("a Moved frame for call %d on the direct pipe of call %d", m.Seq, j.seq)
			}
			if err == nil {
				w.e.movedAnswers.Add(1)
			}
		default:
			err = fmt.Errorf("unexpected frame of kind %q", kind)
		}
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) {
		return // an end of the pipe is the worker's death, which wait and read see
	}
	w.e.mu.Lock()
	w.e.stopLocked(w, stopProtocol, "protocol: direct pipe: "+describe(err))
	w.e.mu.Unlock()
}

func describe(err error) string {
	var tl *frame.TooLargeError
	if errors.As(err, &tl) {
		return fmt.Sprintf("frame of %d bytes over the limit of %d bytes (Options.MaxFrame)", tl.Size, tl.Limit)
	}
	return err.Error()
}

func (w *worker) handshake(kind byte, body []byte) error {
	if kind != proto.KindHello {
		return fmt.Errorf("worker %s sent a frame of kind %q before its handshake", w.name, kind)
	}
	h, err := proto.DecodeHello(body)
	if err != nil {
		return fmt.Errorf("worker %s: %w", w.name, err)
	}
	if h.Version != proto.Version {
		return fmt.Errorf("worker %s speaks protocol version %d, this program %d: is Options.Path the same program?",
			w.name, h.Version, proto.Version)
	}
	return nil
}

// onResult completes the running call with the worker's result, observed
// at at, unless the call is being stopped otherwise or is late. The late
// rule (executor.TimeoutHandler): a result observed at or after the call's
// deadline, or one the worker itself found past it, is a timeout; one
// observed before it is the answer, even if the deadline's timer fired
// while it was on its way here (the worker, killed already, is replaced).
func (w *worker) onResult(body []byte, at time.Time) error {
	res, err := proto.DecodeResult(body)
	if err != nil {
		return err
	}
	e := w.e
	e.mu.Lock()
	j := w.job
	late := j != nil && !j.deadline.IsZero() && (res.Expired || !at.Before(j.deadline))
	if w.stopping {
		if w.reason != stopTimeout || late || j == nil || j.seq != res.Seq {
			e.mu.Unlock()
			return nil // the stop decides the answer
		}
		w.detachLocked(j) // the serving slot then has no call to fail
		e.mu.Unlock()
		w.answer(j, res)
		return nil
	}
	if j == nil || j.seq != res.Seq {
		e.mu.Unlock()
		return fmt.Errorf("a result for call %d, which is not running", res.Seq)
	}
	if late {
		// A timeout, whatever it says (Stopped once the group is dead).
		e.stopLocked(w, stopTimeout, "")
		e.mu.Unlock()
		return nil
	}
	w.timer.Stop()
	w.detachLocked(j)
	w.calls++
	var next *job
	if e.opts.MaxCalls > 0 && w.calls >= e.opts.MaxCalls {
		e.stopLocked(w, stopRecycle, "")
	} else {
		next = e.nextLocked(w)
	}
	e.mu.Unlock()
	if next != nil {
		w.send(next) // before decoding: the worker starts on it meanwhile
	}
	w.answer(j, res)
	return nil
}

// answer decodes the worker's result of j and completes j with it.
func (w *worker) answer(j *job, res proto.Result) {
	var value any
	var err error
	if res.Err != nil {
		err = res.Err.Decode(j.call.Name())
	} else {
		value, err = j.call.Handler.DecodeOutput(res.Output)
	}
	w.e.finish(j, w, value, err)
}

// onLog replays a log record of the task on its call's logger.
func (w *worker) onLog(body []byte) error {
	l, err := proto.DecodeLog(body)
	if err != nil {
		return err
	}
	w.e.mu.Lock()
	var target hclog.Logger
	for _, j := range []*job{w.job, w.last} {
		if j != nil && j.seq == l.Seq {
			target = j.call.Logger // the last call's for a goroutine it left behind
		}
	}
	w.e.mu.Unlock()
	if target == nil {
		// An older call's leftover goroutine: the line still carries the
		// task, run and attempt.
		target = w.logger
	}
	wire.ReplayLog(target, l.Line)
	return nil
}

// stream logs the worker's stdout or stderr line by line (see
// outputLogger), and keeps the tail of stderr for crash errors.
func (w *worker) stream(f *os.File, name string) {
	defer w.wg.Done()
	r := bufio.NewReaderSize(f, 32<<10)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			if name == "stderr" {
				w.tail.write(line)
			}
			w.outputLogger().Info("output", "stream", name, "line", string(bytes.TrimRight(line, "\r\n")))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// detachLocked ends j's run on w. j stays w's last call, which output read
// between calls is attributed to: the task wrote it before it returned (the
// pipes are read independently of the protocol) or a goroutine it left
// behind wrote it after.
func (w *worker) detachLocked(j *job) {
	w.job = nil
	j.state = jobDone
	j.input, j.call.Input = nil, nil // not kept alive by w.last
	w.last = j
}

// outputLogger returns the logger for a line of the worker's output: the
// running call's, else the last call's, named after the task, else the
// executor's. The user's Named and With run outside Executor.mu: a logger
// that blocks stalls this worker's output only.
func (w *worker) outputLogger() hclog.Logger {
	w.e.mu.Lock()
	j := w.job
	if j == nil {
		j = w.last
	}
	if j == nil || j.call.Logger == nil {
		w.e.mu.Unlock()
		return w.logger
	}
	out := j.output
	w.e.mu.Unlock()
	if out != nil {
		return out
	}
	out = j.call.Logger.Named(j.call.Name()).With("run", j.call.RunID,
		"attempt", j.call.Identity().Attempt, "worker", w.name)
	w.e.mu.Lock()
	if j.output == nil { // the other stream may have made one meanwhile
		j.output = out
	}
	out = j.output
	w.e.mu.Unlock()
	return out
}

// serve offers the started worker to waiting calls, keeps it until it must
// stop, stops it and fails the call it was running, if any. It reports
// whether the worker had a call when it stopped or had served any.
func (e *Executor) serve(w *worker) bool {
	e.mu.Lock()
	e.live[w] = struct{}{}
	next := e.nextLocked(w)
	e.mu.Unlock()
	if next != nil {
		w.send(next)
	}

	var idle *time.Timer
	var idleC <-chan time.Time
	if e.opts.IdleTimeout > 0 {
		idle = time.NewTimer(e.opts.IdleTimeout)
		defer idle.Stop()
		idleC = idle.C
	}
	var memC <-chan time.Time
	if e.opts.MemoryLimit > 0 {
		t := time.NewTicker(e.opts.MemoryPoll)
		defer t.Stop()
		memC = t.C
	}
	for stopped := false; !stopped; {
		select {
		case <-w.timer.C:
			w.onDeadline()
		case <-w.events:
		case <-idleC:
			e.mu.Lock()
			if left := e.opts.IdleTimeout - time.Since(w.lastUsed); w.job != nil || left > 0 {
				idle.Reset(max(left, e.opts.IdleTimeout/4))
			} else {
				e.stopLocked(w, stopIdle, "")
			}
			e.mu.Unlock()
		case <-memC:
			if rss, err := rss(w.pid); err == nil && rss > e.opts.MemoryLimit {
				e.mu.Lock()
				e.stopLocked(w, stopMemory, fmt.Sprintf("memory limit: resident set of %s over the limit of %s (Options.MemoryLimit)",
					mib(rss), mib(e.opts.MemoryLimit)))
				e.mu.Unlock()
			}
		}
		e.mu.Lock()
		stopped = w.stopping
		e.mu.Unlock()
	}

	confirmed := w.stop()
	e.mu.Lock()
	delete(e.live, w)
	j := w.job
	if j != nil {
		w.detachLocked(j)
	}
	reason, detail, calls := w.reason, w.detail, w.calls
	e.mu.Unlock()

	if j != nil { // the answer first: a logger (and survivors, which reads /proc) may be slow
		e.finish(j, w, nil, w.failure(j, reason, detail, confirmed))
	}
	lg := w.logger.With("reason", reason.String(), "status", w.state.String(), "calls", calls)
	if !confirmed {
		lg.Error("worker's process group is still there after SIGKILL", "members", w.group.survivors())
	} else if reason == stopCrash && j == nil {
		lg.Warn("worker died between calls", "stderr", w.tail.String())
	} else {
		lg.Debug("worker stopped")
	}
	w.ended()
	return j != nil || calls > 0
}

// failure is the error of the call j whose worker stopped for reason.
func (w *worker) failure(j *job, reason stopReason, detail string, confirmed bool) error {
	switch reason {
	case stopTimeout:
		return &executor.TimeoutError{Task: j.call.Name(), Limit: j.call.Limit, Elapsed: time.Since(j.start),
			Enforcement: executor.Hard, Stopped: confirmed}
	case stopCancel:
		return j.canceled
	case stopProtocol, stopMemory:
		return &executor.CrashError{Task: j.call.Name(), Reason: detail, Stderr: w.tail.String()}
	case stopCrash:
		return &executor.CrashError{Task: j.call.Name(), Reason: w.state.String(), Stderr: w.tail.String()}
	}
	// Idle, recycle and shutdown stop only workers without a call.
	return &executor.CrashError{Task: j.call.Name(), Reason: "worker stopped: " + reason.String(), Stderr: w.tail.String()}
}

// stop carries out the stop that stopLocked began, and reports whether
// nothing of the worker's process group is left. It returns once the
// worker is reaped, the rest of its group is dead and reaped (or SIGKILL
// did not clear it within killWait), and its goroutines have ended.
func (w *worker) stop() (confirmed bool) {
	e := w.e
	e.mu.Lock()
	reason, stopAt, grace := w.reason, w.stopAt, w.grace
	e.mu.Unlock()

	// The leader first: only once exec.Cmd.Wait has reaped it may the group
	// be reaped here (procgroup.Reap would otherwise steal its status).
	killAt := stopAt.Add(grace) // grace is zero unless the stop is graceful
	if reason == stopCrash {
		killAt = stopAt.Add(crashWait)
	}
	if !waitUntil(w.exited, killAt) {
		_ = w.group.kill()
		<-w.exited
	}
	// Then the rest of the group, orphans this process adopted: they get
	// what is left of the grace period, or nothing after a crash.
	if reason == stopCrash {
		killAt = time.Now()
	}
	confirmed = w.group.drain(killAt, e.foreignZombies)
	if !confirmed {
		_ = w.group.kill()
		confirmed = w.group.drain(time.Now().Add(killWait), e.foreignZombies)
	}
	w.group.release() // Windows: closing the job kills what is left of it
	w.cancel()
	w.req.Close()

	// Output ends at EOF once every holder is dead; a process that escaped
	// the group (setsid) and still holds it is cut off. A goroutine still
	// inside the user's logger is not waited for here (see ended).
	w.done = make(chan struct{})
	go func() { w.wg.Wait(); close(w.done) }()
	if !waitUntil(w.done, time.Now().Add(streamDrain)) {
		w.closeOutput()
	}
	return confirmed
}

// ended waits for the worker's goroutines, which stop once its pipes are
// closed, except that one may still be in the call's logger: the slot
// calls it after the call is answered, so a logger that blocks holds this
// slot, not the call's answer. Call it after stop.
func (w *worker) ended() {
	<-w.done
	w.closeOutput()
}

func (w *worker) closeOutput() {
	w.out.Close()
	w.errOut.Close()
	w.resp.Close()
	if w.dir != nil {
		w.dir.Close() // a Run caller still reading it gets os.ErrClosed
	}
}

// waitUntil waits for c to close until t, and reports whether it did.
func waitUntil(c <-chan struct{}, t time.Time) bool {
	select {
	case <-c:
		return true
	default:
	}
	d := time.Until(t)
	if d <= 0 {
		return false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-c:
		return true
	case <-timer.C:
		return false
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// tail keeps the last bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
	cut bool
}

func (t *tail) write(p []byte) {
	if t.max <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
		t.cut = true
	}
}

// String returns the kept bytes, starting at a line when some were cut,
// without the trailing newline.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > t.max {
		b = b[len(b)-t.max:]
		t.cut = true
	}
	if t.cut {
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
	}
	return string(bytes.TrimRight(b, "\n"))
}
