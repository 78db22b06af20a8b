// Package subprocess is the executor whose limits are hard: each call runs
// in a warm worker process, and a call that overruns its limit, or whose
// caller gives up, has its worker's whole process group killed and reaped
// before the caller gets the answer. Pick it when a runaway task must
// really stop (it ignores its context, spins in C code, starts processes
// of its own), when a task may crash the process it runs in, or when it
// leaks; pick executor/pool when tasks are well-behaved Go code and a
// call must cost nanoseconds rather than tens of microseconds. It runs on
// Linux, macOS and Windows, with each system's own mechanics (see
// Operating systems).
//
// # Use
//
// The program's own binary is started again as each worker, so main (and
// TestMain in tests) calls ServeIfWorker first, with a registry of every
// task the program may submit; in the original process the hook returns
// at once, in a worker it serves calls and never returns:
//
//	func main() {
//		subprocess.ServeIfWorker(tasks.Registry())
//		ex, err := subprocess.New(subprocess.Options{})
//		if err != nil { ... } // an *UnsupportedError: see Operating systems
//		defer ex.Shutdown(context.Background())
//		v, err := executor.Run(ctx, ex, executor.Call{Handler: tasks.Resize, Input: img, Limit: time.Minute})
//		...
//	}
//
// Forgetting the hook is reported, not hung on: the worker runs the
// program's main instead of serving, never shakes hands, and the first call
// fails with an *executor.CrashError whose Reason starts with "start:"
// (at once if that main exits, after Options.StartTimeout if it runs on).
// A worker that does not know a task answers with an
// *executor.UnknownTaskError naming the worker.
//
// # Outcomes
//
//	what happened                         the Future's error                                  the worker
//	the task returned in time             its result, or its error (message and class kept)   kept
//	the task panicked                     *executor.PanicError with the task's stack          kept
//	the task called runtime.Goexit        *executor.PanicError, at once                       kept
//	the limit passed                      *executor.TimeoutError{Hard, Stopped: true}         killed, replaced
//	the caller's context ended            *executor.CanceledError (matches context.Canceled)  killed, replaced
//	the worker exited or was killed       *executor.CrashError{Reason: "exit status 3"}       replaced
//	the worker went over MemoryLimit      *executor.CrashError{Reason: "memory limit: ..."}   killed, replaced
//	the worker broke the protocol         *executor.CrashError{Reason: "protocol: ..."}       killed, replaced
//	no worker could start                 *executor.CrashError{Reason: "start: ..."}          -
//	the worker does not know the task     *executor.UnknownTaskError{Where: "worker pid N"}   kept
//	the input does not encode, too large  *executor.InputError; nothing starts                -
//	the result does not encode, too large *executor.OutputError                               kept
//
// A CrashError quotes the tail of the worker's stderr (Options.StderrTail),
// where a Go runtime writes its fatal errors and a panic outside the
// task's goroutine its trace. A timeout or cancellation is reported only
// once the worker and every process of its group are dead and reaped:
// kill(-pgid, 0) then fails with ESRCH. If SIGKILL cannot clear the group
// (a process stuck in the kernel), Stopped is false and the executor logs
// the survivors at Error level.
//
// # Workers and the protocol
//
// Options.Workers worker processes run one call at a time each; further
// calls wait in a FIFO queue. With Options.MaxQueue set and that many
// waiting, Submit waits for room while its context allows (errgroup's Go)
// and TrySubmit fails at once with executor.ErrQueueFull (errgroup's
// TryGo). Workers start lazily, are reused across calls, and can be
// recycled after Options.MaxCalls calls or retired after
// Options.IdleTimeout. A worker that is lost with a call, or recycled, is
// replaced at once, so the next call finds it warm. Each worker leads a process group of its own
// (Setpgid): the tasks' children are in it, and signals go to all of them.
//
// Calls and results travel as length-prefixed frames on pipes of their
// own, the worker's fd 3 and fd 4 (and fd 5, below), so a task that prints
// cannot corrupt them; inputs and results in the Handler's codec (JSON by
// default), errors as internal/wire envelopes, which keep their message
// and class and rebuild the executor package's typed errors. The worker's
// stdout and stderr are logged line by line on the call's Logger, named
// after the task, with its run, attempt and worker (lines read between
// calls go to the last call's logger); the task's own log lines
// (executor.Logger(ctx) in the worker) reach the call's Logger with their
// level, message and pairs, task, run and attempt among them. Loggers run
// with no lock of the executor held: a logger that blocks holds up only
// its worker's output (and the task, once the pipe is full); the call is
// still answered at its limit, other calls go on, and the worker's slot is
// replaced only once the logger returns.
//
// A warm round trip costs tens of microseconds: the two pipe writes, the
// codec, and waking each process once. A call through Executor.Run (and so
// executor.Run) that an idle worker takes at once saves the rest: its
// result comes back on a third pipe, the worker's fd 5, which the caller
// reads itself, so no goroutine of this process wakes another to pass the
// answer on. A call that logs still gets its answer after its log lines:
// the worker then sends the result after them on fd 4. Windows has no
// third pipe; there Run is Submit and Future.Wait. Where waking an idle
// CPU is slow (virtual machines), Options.Spin has the reader that expects
// a frame poll for it briefly before it sleeps, at the price of CPU; see
// docs/benchmarks.md for the figures against a bare two-pipe floor.
//
// # Stopping a worker
//
// At a call's limit, or when its caller's context ends, the executor stops
// the worker's whole process group. By default there is no grace period:
// the group gets SIGKILL at once, so the call's work stops at its limit,
// whatever it does (Prefect's own test of its timeout handler, a task
// writing a line every 260ms under a 1s limit, leaves at most 4 lines).
//
// A grace period for cooperative cleanup is opt-in: Options.Grace for
// every call, Call.Grace for one (positive: that grace; negative: none;
// zero: Options.Grace). With one, the executor cancels the worker's
// exec.Cmd context, whose Cancel sends SIGTERM to the group, and sends
// SIGKILL to the group when the grace period ends. The worker catches
// SIGTERM: it ends the task's context (as a timeout past the deadline, a
// cancellation before it) and exits as soon as the task returns, so a
// task that honours its context costs a millisecond or so past the
// deadline, not the grace period. Until it returns or SIGKILL comes,
// everything of the call runs on: the task's goroutine and the goroutines
// it started, even if they ignore their context (SIGTERM only ends a
// context), and its child processes that ignore or trap SIGTERM (others
// die of it). A task that calls signal.Ignore(SIGTERM) changes the worker
// for the rest of the call only: the worker's handler is restored before
// the next.
//
// The worker itself is reaped by exec.Cmd.Wait; only then are the rest of
// the group, orphans this process adopted, reaped with wait4(-pgid,
// WNOHANG), which never takes another child's exit status; they get what
// is left of the grace period. exec.Cmd.WaitDelay is not used: it is
// fixed when the command starts, while a grace period is per call, and it
// would kill the leader only.
//
// In the worker, the task's context carries the call's deadline and ends
// at it with the *executor.TimeoutError as its cause, so cooperative code
// can stop by itself; without a grace period it is killed at that moment.
//
// # Orphans, zombies and the subreaper
//
// When a worker dies, its task's children are orphaned. Linux gives
// orphans to the nearest child subreaper, else to PID 1; in containers
// whose PID 1 does not reap, a killed orphan stays a zombie for ever, and
// a group with a zombie is not gone. So New makes this process a child
// subreaper (prctl(PR_SET_CHILD_SUBREAPER)), and the executor reaps the
// members of its workers' groups. The setting is process-wide and stays
// for the life of the process: orphans of every child process, including
// those other code starts, come to this process too, and those outside the
// executor's groups are reaped by nobody until it exits (PID 1 would have
// reaped them on an ordinary system). Options.NoSubreaper leaves the
// setting alone; a group whose processes are all dead but owned by another
// parent then counts as stopped.
//
// A task may leave processes running when it returns. They stay in its
// worker's group, so they are stopped with the worker (at a later call's
// timeout, at recycling, at Shutdown); those that end before are zombies
// of this process until then. Options.MaxCalls bounds how long that is.
//
// # Dying with the parent
//
// A worker dies with the program that started it, and takes its group
// with it, in two ways. Its parent-death signal (Pdeathsig) is SIGHUP, on
// which it kills its group. Linux sends that signal when the thread that
// forked the worker exits, so workers are forked from one goroutine locked
// to its thread for the executor's life (Go ends a thread when a goroutine
// that locked it exits; any other thread could go with unrelated code).
// It is not SIGTERM because, when a multi-threaded parent is killed, the
// forking thread may exit before getppid changes, and the worker could not
// tell it from its parent's SIGTERM. And the worker kills its group when its
// protocol pipe closes, which happens only when the parent is gone (a
// task that ignores SIGHUP does not escape), during a call too: on Linux
// an epoll set that asks for no event reports the pipe's EPOLLHUP, so the
// call runs on the goroutine that read it and nothing else reads the pipe;
// on macOS and Windows a reader goroutine reads it while a runner runs
// the call. Processes that leave the group
// (setsid) are beyond both.
//
// # Operating systems
//
// The process mechanics live in one file per system (os_linux.go,
// os_darwin.go, os_windows.go, with internal/procgroup); what a system
// cannot do is refused by New with an *UnsupportedError, never dropped
// silently.
//
//	                     Linux                        macOS                         Windows
//	a worker's tree      its process group            its process group             a Job Object (no breakaway)
//	stop request         SIGTERM to the group         SIGTERM to the group          an inherited event, set
//	kill                 SIGKILL to the group         SIGKILL to the group          TerminateJobObject
//	"dead" means         kill(-pgid, 0) fails ESRCH   kill(-pgid, 0) fails ESRCH    no active process in the job
//	orphans              reaped here (subreaper)      reaped by launchd             held by the job
//	parent dies          Pdeathsig and pipe EOF       pipe EOF: it kills its group  KILL_ON_JOB_CLOSE
//	Options.MemoryLimit  yes (/proc/<pid>/statm)      refused by New                refused by New
//	Options.NoSubreaper  honoured                     nothing to do                 nothing to do
//	tested here          yes, in CI                   cross-compiled and vetted     cross-compiled and vetted
//
// On Windows a worker starts suspended, is put in its job, then resumed,
// so it starts nothing outside it; the job's handle is this process's
// alone, and when this process dies Windows closes it and kills the job.
// A task cannot turn the stop event off as signal.Ignore turns SIGTERM
// off; it still gets the grace period to return after its context ends.
// On macOS a worker that is killed leaves its task's children to launchd,
// which reaps them, so a group whose members are dead but owned by
// launchd counts as stopped. Other systems: New refuses the executor.
//
// Under the race detector, a Go program sleeps a second before it exits;
// workers of a race-enabled program are started with GORACE
// atexit_sleep_ms=0 (unless GORACE sets it), since every timeout waits for
// a worker's exit.
package subprocess
