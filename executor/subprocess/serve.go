package subprocess

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/subprocess/internal/proto"
	"github.com/flowline-go/flowline/internal/deadlinectx"
	"github.com/flowline-go/flowline/internal/frame"
	"github.com/flowline-go/flowline/internal/wire"
	"github.com/flowline-go/flowline/observe"
)

// envWorker marks a process started as a worker. Its value is
// "v<protocol>,<parent pid>,<frame limit>,<spin ns>"; the parent's pid is
// not used by the worker, it marks the processes of one parent (tests look
// for them). The spin field (Options.Spin) may be left out: then none.
const envWorker = "FLOWLINE_SUBPROCESS_WORKER"

func workerSpec(ppid, maxFrame int, spin time.Duration) string {
	return fmt.Sprintf("v%d,%d,%d,%d", proto.Version, ppid, maxFrame, spin)
}

func parseSpec(spec string) (ppid, maxFrame int, spin time.Duration, err error) {
	parts := strings.Split(spec, ",")
	if len(parts) < 3 || len(parts) > 4 || parts[0] != fmt.Sprintf("v%d", proto.Version) {
		return 0, 0, 0, fmt.Errorf("want v%d,<parent pid>,<frame limit>,<spin ns>", proto.Version)
	}
	if ppid, err = strconv.Atoi(parts[1]); err != nil {
		return 0, 0, 0, err
	}
	if maxFrame, err = strconv.Atoi(parts[2]); err != nil {
		return 0, 0, 0, err
	}
	if len(parts) == 4 {
		ns, err := strconv.ParseInt(parts[3], 10, 64)
		if err != nil {
			return 0, 0, 0, err
		}
		spin = time.Duration(ns)
	}
	return ppid, maxFrame, spin, nil
}

// ServeIfWorker turns this process into a worker when an Executor started
// it as one, and returns at once otherwise. Call it first thing in main,
// and in TestMain for tests that use the subprocess executor, with a
// registry of every task the program may submit: the worker finds tasks in
// it by name, and a call of a task it lacks fails with an
// *executor.UnknownTaskError that names the worker.
//
// In a worker it never returns: it serves calls, one at a time, until its
// parent stops it with SIGTERM, then exits. If the parent dies (its
// protocol pipe closes, or the parent-death signal arrives), the worker
// kills its whole process group, so no task outlives the program. It exits with status 2 if the process was marked
// as a worker but lacks the protocol pipes (the marker was set by hand).
//
// The worker unsets its marker before serving, so processes that tasks
// start are not workers, and a task may use its own Executor.
func ServeIfWorker(reg *executor.Registry) {
	spec, ok := os.LookupEnv(envWorker)
	if !ok {
		return
	}
	_ = os.Unsetenv(envWorker)
	os.Exit(serve(reg, spec))
}

// server is the worker's side of the protocol.
type server struct {
	reg   *executor.Registry
	pid   int
	pgid  int
	limit int
	out   *os.File
	dir   *os.File  // the direct pipe (fd 5), for the results of Direct calls; nil on Windows
	in    io.Reader // the calls pipe, polled for the next call after a result (Options.Spin)
	sigs  chan os.Signal
	stop  stopper // where the parent's stop requests come from

	wmu    sync.Mutex // serialises frames on out and dir
	wbuf   []byte
	logged uint64 // the last call that sent a Log frame, under wmu

	mu          sync.Mutex
	current     *running
	terminating bool
}

// running is the call the worker is running.
type running struct {
	deadline    time.Time
	expire      func()                  // ends the task's context with its *TimeoutError
	cancel      func()                  // ends it with context.Canceled, with a deadline
	cancelCause context.CancelCauseFunc // ends it, without one (cancel is nil then)
}

// callRun is a call's state in the worker, in one allocation: the running
// call the signal handler stops, and what a task's runtime.Goexit needs
// to fill in the result.
type callRun struct {
	running
	s   *server
	h   *executor.Handler
	c   proto.Call
	res *proto.Result
}

// goexit fills in the result of a task that called runtime.Goexit.
func (cr *callRun) goexit(pe *executor.PanicError) {
	cr.s.fill(cr.res, cr.h, cr.c, &cr.running, nil, pe)
}

// stop ends the task's context: as a timeout once its deadline has
// passed, as a cancellation before.
func (r *running) stop() {
	if !r.deadline.IsZero() && !time.Now().Before(r.deadline) {
		r.expire()
		return
	}
	if r.cancelCause != nil {
		r.cancelCause(context.Canceled)
		return
	}
	r.cancel()
}

func serve(reg *executor.Registry, spec string) int {
	_, limit, spin, err := parseSpec(spec)
	if err != nil {
		fmt.Fprintf(os.Stderr, "executor/subprocess: bad %s=%q: %v\n", envWorker, spec, err)
		return 2
	}
	callsIn, resultsOut, direct, stop, err := workerFiles() // os_*.go
	if err != nil {
		fmt.Fprintf(os.Stderr, "executor/subprocess: %v\n", err)
		return 2
	}
	s := &server{
		reg:   reg,
		pid:   os.Getpid(),
		pgid:  ownGroup(),
		limit: limit,
		out:   resultsOut,
		dir:   direct,
		sigs:  make(chan os.Signal, 2),
		stop:  stop,
		in:    newBlockingReader(callsIn, spin),
	}
	stop.watch(s.sigs)
	go s.signals()

	if err := s.send(&proto.Hello{Version: proto.Version, PID: s.pid}); err != nil {
		s.lost()
	}
	kick(s.in) // the first call comes soon
	r := frame.NewReader(s.in, limit)
	if watchHangup(callsIn, s.lost) { // os_*.go
		// The parent's death is seen while a call runs without reading
		// the calls pipe: each call runs on the goroutine that read it,
		// with no hand-off between goroutines.
		var inline func(proto.Call)
		inline = func(c proto.Call) {
			s.serveCall(c, func() { // runtime.Goexit ended this goroutine: read on with a new one
				go func() { os.Exit(s.readCalls(r, inline)) }()
			})
		}
		return s.readCalls(r, inline)
	}
	// The calls pipe is read while a call runs, for its end: a reader
	// goroutine hands calls to a runner.
	calls := make(chan proto.Call, 1)
	go s.runner(calls)
	return s.readCalls(r, func(c proto.Call) { calls <- c })
}

// readCalls reads Call frames from r and gives each to run, until the pipe
// ends (s.lost, which does not return) or breaks the protocol: then it
// returns the worker's exit status.
func (s *server) readCalls(r *frame.Reader, run func(proto.Call)) int {
	for {
		kind, body, err := r.Next()
		if err != nil {
			s.lost()
		}
		if kind != proto.KindCall {
			fmt.Fprintf(os.Stderr, "executor/subprocess: worker got a frame of kind %q\n", kind)
			return 2
		}
		c, err := proto.DecodeCall(body)
		if err != nil {
			fmt.Fprintf(os.Stderr, "executor/subprocess: worker: %v\n", err)
			return 2
		}
		run(c)
	}
}

// signals handles the worker's two signals. SIGTERM comes from the
// parent when a stop has a grace period: it ends the running call's
// context, and the worker exits once the call returns (the parent sends
// SIGKILL when the grace period ends; without one it sends only that).
// SIGHUP is the parent-death signal (Pdeathsig): the worker kills its
// group. The parent-death signal cannot be SIGTERM: Linux sends it when the
// thread that forked the worker exits, and when a multi-threaded parent is
// killed that thread may go first, while getppid still names the parent,
// so the worker could not tell it from the parent's own SIGTERM.
func (s *server) signals() {
	for sig := range s.sigs {
		if sig == syscall.SIGHUP {
			s.orphaned()
		}
		s.terminate()
	}
}

// lost handles the end of the protocol pipe. The parent closes its ends
// only after this worker is dead, so a live worker sees the pipe end only
// when the parent is gone, or going: the pipe closes before the kernel
// reparents this process, so os.Getppid may still name the dying parent.
// It kills the group and never returns.
func (s *server) lost() {
	s.orphaned()
}

// orphaned kills the worker's whole group, itself included: the parent is
// gone and nobody else would stop what the task started.
func (s *server) orphaned() {
	killOwnGroup(s.pid, s.pgid) // never the group of a parent that did not give us our own
	os.Exit(1)
}

// terminate exits now if no call runs, and otherwise ends the call's
// context and lets the runner exit when the call returns.
func (s *server) terminate() {
	s.mu.Lock()
	s.terminating = true
	cur := s.current
	s.mu.Unlock()
	if cur == nil {
		os.Exit(0)
	}
	cur.stop()
}

// runner runs the calls, one at a time, on one long-lived goroutine: its
// stack, grown by the first calls, serves the next ones (a goroutine per
// call would grow a fresh stack every time). A task that calls
// runtime.Goexit ends it; then a new runner takes over.
func (s *server) runner(calls <-chan proto.Call) {
	for c := range calls {
		s.serveCall(c, func() { go s.runner(calls) })
	}
}

// serveCall runs c and sends its result. When the task calls
// runtime.Goexit, which ends the calling goroutine, serveCall calls
// replace (to start a goroutine that serves on) before it sends the
// result, and does not return.
func (s *server) serveCall(c proto.Call, replace func()) {
	var res proto.Result
	returned := false
	defer func() {
		if !returned { // runtime.Goexit: res holds the *PanicError
			replace()
		}
		s.mu.Lock()
		s.current = nil
		term := s.terminating
		s.mu.Unlock()
		if term {
			os.Exit(0)
		}
		s.sendResult(&res, c.Direct)
		if c.Spin {
			kick(s.in) // the next call comes soon
		}
		// A task that ignored SIGTERM or SIGHUP (signal.Ignore) turned off
		// the worker's handler too; turn it back on for the next call.
		s.stop.rewatch(s.sigs)
	}()
	s.call(c, &res)
	returned = true
}

// call runs one call and sets *res to its result, also when the task
// calls runtime.Goexit (call then does not return).
func (s *server) call(c proto.Call, res *proto.Result) {
	*res = proto.Result{Seq: c.Seq}
	h, err := s.reg.Lookup(c.Task)
	if err != nil {
		res.Err = wire.EncodeError(&executor.UnknownTaskError{Task: c.Task, Where: "worker pid " + strconv.Itoa(s.pid)})
		return
	}
	call := &executor.Call{Handler: h, RunID: c.RunID, Attempt: c.Attempt, Limit: c.Limit,
		Logger: s.taskLogger(c.Seq, hclog.Level(c.LogLevel))}
	if c.TraceParent != "" {
		call.Trace = &executor.Trace{Parent: c.TraceParent, State: c.TraceState}
	}
	parent := context.Background()
	if obs := s.reg.Observer(); obs != nil {
		wc := &observe.WorkerCall{Task: c.Task, RunID: c.RunID, Attempt: c.Attempt,
			Worker: "pid " + strconv.Itoa(s.pid), TraceParent: c.TraceParent, TraceState: c.TraceState, Start: time.Now()}
		parent = obs.WorkerStart(parent, wc)
		call.Trace = nil
		if tp, ts := observe.Clean(wc.TraceParent, wc.TraceState); tp != "" {
			call.Trace = &executor.Trace{Parent: tp, State: ts}
		}
		defer func() {
			wc.End = time.Now()
			if res.Err != nil {
				wc.Err, wc.Class = res.Err.Decode(c.Task), string(res.Err.Class)
			}
			obs.WorkerEnd(wc)
		}()
	}
	base := executor.WithCall(parent, call)
	// The closures below read cr's copy of c, never c: one that captured c
	// would move it to the heap, an allocation more per call.
	cr := &callRun{s: s, h: h, c: c, res: res}
	r := &cr.running
	var ctx context.Context
	if c.Deadline != 0 {
		// The task's own clock: at the deadline its context ends with the
		// *TimeoutError as its cause, as the parent's SIGTERM arrives, so
		// cooperative code stops by itself.
		r.deadline = time.Unix(0, c.Deadline)
		start := r.deadline.Add(-c.Limit)
		dctx := deadlinectx.New(base, r.deadline)
		r.expire = func() {
			dctx.Expire(&executor.TimeoutError{Task: cr.c.Task, Limit: cr.c.Limit, Elapsed: time.Since(start), Enforcement: executor.Hard})
		}
		r.cancel = dctx.Release
		t := time.AfterFunc(time.Until(r.deadline), r.expire)
		defer t.Stop()
		defer dctx.Release()
		ctx = dctx
	} else {
		cctx, cancel := context.WithCancelCause(base)
		r.cancelCause = cancel
		defer cancel(nil)
		ctx = cctx
	}
	s.mu.Lock()
	s.current = r
	term := s.terminating
	s.mu.Unlock()
	if term {
		r.stop()
	}

	// A task's runtime.Goexit is answered as a *executor.PanicError and
	// the worker serves on (with a new runner).
	out, err := h.RunOnGoexit(ctx, executor.Raw(c.Input), cr.goexit)
	s.fill(res, h, c, r, out, err)
}

// fill completes *res with the task's outcome.
func (s *server) fill(res *proto.Result, h *executor.Handler, c proto.Call, r *running, out any, err error) {
	res.Expired = !r.deadline.IsZero() && !time.Now().Before(r.deadline)
	if err == nil {
		res.Output, err = h.EncodeOutput(out)
	}
	if err == nil && len(res.Output) > s.limit-resultOverhead {
		err = &executor.OutputError{Task: c.Task, Type: h.OutputType().String(),
			Err: fmt.Errorf("encoded result of %d bytes over the frame limit of %d bytes", len(res.Output), s.limit)}
	}
	if err != nil {
		res.Output, res.Err = nil, wire.EncodeError(err)
		clip(res.Err, s.limit/8)
	}
}

// resultOverhead bounds the bytes of a Result frame besides the output.
const resultOverhead = 32

// clip shortens the long texts of an error so that it fits in a frame.
func clip(w *wire.Error, n int) {
	for _, p := range []*string{&w.Message, &w.Stack, &w.Value, &w.Stderr, &w.Cause} {
		if len(*p) > n {
			*p = (*p)[:n] + "... (clipped)"
		}
	}
}

// appender is a message that encodes itself as a frame.
type appender interface {
	Append(b []byte, limit int) ([]byte, error)
}

// send writes one frame to the parent on the results pipe.
func (s *server) send(m appender) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.sendLocked(s.out, m)
}

// sendLocked writes one frame on f, under wmu.
func (s *server) sendLocked(f *os.File, m appender) error {
	b, err := m.Append(s.wbuf[:0], s.limit)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cap(b) <= 64<<10 {
		s.wbuf = b // keep small buffers only
	}
	return err
}

// sendResult sends a call's result: on the direct pipe if direct (the
// call's Direct) and the call sent no Log frame, and otherwise on the
// results pipe, after its logs, with a Moved frame on the direct pipe when
// direct. A failed write means the parent closed the pipe or died.
func (s *server) sendResult(res *proto.Result, direct bool) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	to, moved := s.out, false
	if direct && s.dir != nil {
		if s.logged == res.Seq {
			moved = true
		} else {
			to = s.dir
		}
	}
	err := s.sendLocked(to, res)
	if errors.Is(err, frame.ErrTooLarge) { // call checks the size; this is a safety net
		err = s.sendLocked(to, &proto.Result{Seq: res.Seq, Expired: res.Expired, Err: wire.EncodeError(
			fmt.Errorf("executor/subprocess: result over the frame limit of %d bytes", s.limit))})
	}
	if err == nil && moved {
		err = s.sendLocked(s.dir, &proto.Moved{Seq: res.Seq})
	}
	if err != nil {
		s.lost()
	}
}

// sendLog sends one log line of call seq; a line over the frame limit is
// replaced by a warning that says so.
func (s *server) sendLog(seq uint64, line []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.logged = seq // its result follows its logs (sendResult)
	err := s.sendLocked(s.out, &proto.Log{Seq: seq, Line: line})
	if errors.Is(err, frame.ErrTooLarge) {
		_ = s.sendLocked(s.out, &proto.Log{Seq: seq, Line: fmt.Appendf(nil,
			`{"@level":"warn","@message":"task log line dropped: over the frame limit","bytes":%d}`, len(line))})
	}
	// A failed write is the runner's to notice, when it sends the result.
}

// raceEnv returns env with the race detector's exit pause turned off
// (GORACE atexit_sleep_ms=0) unless env already sets it. A race-enabled
// program otherwise sleeps 1s before it exits, and a worker exits at every
// timeout, cancellation and retirement, which the executor waits for.
func raceEnv(env []string) []string {
	for i := len(env) - 1; i >= 0; i-- {
		v, ok := strings.CutPrefix(env[i], "GORACE=")
		if !ok {
			continue
		}
		if strings.Contains(v, "atexit_sleep_ms") {
			return env
		}
		return append(env[:i:i], append([]string{"GORACE=" + strings.TrimSpace(v+" atexit_sleep_ms=0")}, env[i+1:]...)...)
	}
	return append(env, "GORACE=atexit_sleep_ms=0")
}
