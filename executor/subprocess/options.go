package subprocess

import (
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options configure an Executor. The zero value is ready to use: as many
// workers as GOMAXPROCS, no grace period (a call's work stops at its
// limit), no recycling, no memory cap.
type Options struct {
	// Workers is the number of worker processes, and so the number of calls
	// that run at once; further calls wait in a queue, first in first out.
	// Workers start lazily, when a call finds none idle. Zero or less means
	// runtime.GOMAXPROCS(0).
	Workers int

	// MaxQueue bounds the calls waiting for a worker: when that many are
	// waiting, Submit waits for room while its context allows, and
	// TrySubmit fails at once with executor.ErrQueueFull. Zero or less
	// means no bound.
	MaxQueue int

	// Grace is the time between SIGTERM and SIGKILL when a worker's process
	// group is stopped: at a call's limit and at its cancellation (unless
	// the Call sets its own Grace, see below), and when a worker is retired
	// or shut down. Zero or less means none: the group gets SIGKILL at
	// once, so a call's work stops at its limit, whatever it does.
	//
	// A grace period is for cooperative cleanup, and is opt-in: during it
	// the worker has caught SIGTERM and ended the task's context, but
	// everything of the call still runs until it returns or SIGKILL comes
	// at the end of the grace period: Go code that ignores its context
	// (the task's goroutine and any it started), and the task's child
	// processes that ignore or trap SIGTERM. The caller hears once the
	// whole group is dead, at limit + grace at most.
	//
	// A Call's own Grace overrides it for that call's limit and
	// cancellation: positive is that grace period, negative is none, zero
	// is this one.
	Grace time.Duration

	// MaxCalls recycles a worker once it has served this many calls: it is
	// stopped and a fresh one takes its place, which bounds what a leaky
	// task can accumulate. Zero or less means never.
	MaxCalls int

	// IdleTimeout retires a worker that has had no call for this long; a
	// new one starts when a call needs it. Zero or less means never.
	IdleTimeout time.Duration

	// StartTimeout bounds the time from starting a worker to its handshake.
	// A program whose main does not call ServeIfWorker never shakes hands:
	// the call that needed the worker fails with an *executor.CrashError
	// whose Reason starts with "start:", at once if the program exits,
	// after StartTimeout if it runs on. Zero or less means 10s.
	StartTimeout time.Duration

	// MaxFrame bounds a protocol frame, in bytes. An encoded input over it
	// is an *executor.InputError and a result over it an
	// *executor.OutputError; a worker that sends a larger frame anyway (or
	// anything that is not a frame) fails its call with an
	// *executor.CrashError whose Reason starts with "protocol:", and is
	// replaced. Zero or less means 16 MiB; the floor is 1 KiB.
	MaxFrame int

	// MemoryLimit caps each worker's resident set size, in bytes, checked
	// every MemoryPoll by reading /proc/<pid>/statm. A worker over the cap
	// is killed at once (SIGKILL to its process group, no grace) and its
	// call fails with an *executor.CrashError whose Reason starts with
	// "memory limit:". Only the worker process is measured, not processes
	// its task starts; a breach between two polls goes unseen until the
	// next. Zero or less means no cap.
	MemoryLimit int64

	// MemoryPoll is how often MemoryLimit is checked. Zero or less means
	// 50ms.
	MemoryPoll time.Duration

	// StderrTail is how many of the last bytes of a worker's stderr a
	// CrashError quotes. Zero means 4 KiB; negative means none.
	StderrTail int

	// Path is the program started as a worker. Empty means the running
	// program itself (os.Executable), whose main must call ServeIfWorker.
	Path string

	// Args are the worker's arguments, after the program name. Nil means
	// none, except in a test binary (a program with a "test.run" flag),
	// where it means "-test.run=^$": a TestMain that forgets ServeIfWorker
	// then runs no tests in the worker and fails the first call at once
	// instead of running the tests again.
	Args []string

	// Env is added to the worker's environment, which is otherwise this
	// process's.
	Env []string

	// Spin is how long a protocol pipe is polled for the frame expected on
	// it before its reader sleeps: in the worker for the next call after
	// each result, in this process for a worker's result after each call
	// it was sent (not for a call of Executor.Run read on its caller's
	// goroutine, which sleeps in the runtime's poller as a bare pipe read
	// does); both only while that call is the only one running (with
	// more, every CPU has work and none sleeps). A round trip wakes each
	// process once; where waking an idle CPU is slow (virtual machines,
	// deep C-states) that wake-up costs more than the rest of the round
	// trip, and a reader that polls sees its frame at once. Polling costs
	// CPU: up to Spin per wait that ends without a frame, on each side, and
	// all of the wait when calls follow each other closer than Spin. A
	// polling reader yields between polls (runtime.Gosched, sched_yield),
	// and stops polling for a while when another thread was given its CPU
	// meanwhile (the machine is busy). Zero means 50µs; negative means
	// none: readers sleep at once. Windows never polls.
	Spin time.Duration

	// NoSubreaper stops New from making this process a child subreaper. By
	// default it does, so that the orphans a killed worker leaves behind
	// come back to this process, which kills and reaps them: without it,
	// they go to PID 1, and where PID 1 does not reap (some containers) a
	// killed grandchild stays a zombie for ever. The setting is
	// process-wide: see the package documentation for its cost. With
	// NoSubreaper, a group whose processes are all dead but not reaped by
	// their new parent counts as stopped.
	NoSubreaper bool

	// Logger receives the executor's own messages, named "subprocess", and
	// the output of workers between calls. Nil means no logging. The output
	// and log lines of a running task go to its Call's Logger instead.
	Logger hclog.Logger
}

const (
	defaultStartTimeout = 10 * time.Second
	defaultMaxFrame     = 16 << 20
	minMaxFrame         = 1 << 10
	defaultMemoryPoll   = 50 * time.Millisecond
	defaultStderrTail   = 4 << 10
	defaultSpin         = 50 * time.Microsecond

	// killWait bounds the wait for a process group to vanish after SIGKILL;
	// only a process stuck in the kernel (uninterruptible sleep) takes that
	// long, and then the stop is reported as unconfirmed.
	killWait = 5 * time.Second

	// crashWait bounds the wait for a worker that broke its pipes (it is
	// normally exiting) to exit by itself before its group gets SIGKILL;
	// its exit status is the CrashError's reason.
	crashWait = time.Second

	// streamDrain bounds the wait for a dead worker's stdout and stderr to
	// reach EOF; a process that escaped the group (setsid) and still holds
	// them is cut off after it.
	streamDrain = 200 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.MaxQueue < 0 {
		o.MaxQueue = 0
	}
	if o.Grace < 0 {
		o.Grace = 0
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = defaultStartTimeout
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = defaultMaxFrame
	}
	o.MaxFrame = max(o.MaxFrame, minMaxFrame)
	if o.MemoryPoll <= 0 {
		o.MemoryPoll = defaultMemoryPoll
	}
	switch {
	case o.Spin == 0:
		o.Spin = defaultSpin
	case o.Spin < 0:
		o.Spin = 0
	}
	if o.StderrTail == 0 {
		o.StderrTail = defaultStderrTail
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}
