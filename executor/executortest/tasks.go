package executortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowline-go/flowline/executor"
)

// Args is the input of every task of the suite. Each task reads the fields
// it needs and ignores the others.
type Args struct {
	N           int           // a number to compute with, or an exit code
	Text        string        // a message: an error text, a panic value, a log value
	Sleep       time.Duration // how long to work
	Tick        time.Duration // how often to append to Path
	Path        string        // a file to append to or to report into
	Cooperative bool          // whether the work watches its context
	IgnoreTerm  bool          // out of process only: ignore SIGTERM, so only SIGKILL stops it
}

// Reply is the result of every task of the suite.
type Reply struct {
	N           int
	Text        string
	Identity    executor.Identity
	HasDeadline bool
	// ReturnedLate is set by Sleep when, just before returning, the task
	// found its context's deadline already passed: the executor sees the
	// return later still, so by the late rule the call must not succeed.
	ReturnedLate bool `json:",omitempty"`
}

// ErrTask is wrapped by the error that the Fail task returns, so that the
// suite can check that a task's own error keeps its identity in process.
var ErrTask = errors.New("executortest: the task's own error")

// The suite's tasks. They are package variables so that a worker process
// re-executed from a test binary has them too; Registry registers them.
var (
	// Echo returns N*2 and Text, and whether its context has a deadline.
	Echo = executor.NewHandler("executortest.echo", echo, nil)
	// Whoami returns the identity it finds in its context.
	Whoami = executor.NewHandler("executortest.whoami", whoami, nil)
	// Fail returns Reply{N: N} and an error "<Text>: " wrapping ErrTask.
	Fail = executor.NewHandler("executortest.fail", fail, nil)
	// Skip returns an error of class executor.ClassSkip with message Text.
	Skip = executor.NewHandler("executortest.skip", skip, nil)
	// Sleep sleeps for Sleep and returns N and Text (a caller's token, in
	// the stress checks); if Cooperative, it returns its context's error as
	// soon as the context ends.
	Sleep = executor.NewHandler("executortest.sleep", sleep, nil)
	// Append appends a line to Path every Tick until Sleep has passed; if
	// Cooperative, it stops as soon as its context ends.
	Append = executor.NewHandler("executortest.append", appendTicks, nil)
	// Deadline writes its context's deadline to Path as a JSON line, waits
	// for the context to end (an hour at most), then appends a second line
	// with the cause.
	Deadline = executor.NewHandler("executortest.deadline", deadline, nil)
	// Panic panics with Text.
	Panic = executor.NewHandler("executortest.panic", panicky, nil)
	// Spawn starts goroutines and a child process "sh -c 'echo $0' Text";
	// it returns the child's output and N+1+2+3 computed by the goroutines.
	Spawn = executor.NewHandler("executortest.spawn", spawn, nil)
	// Grandchild starts "sh -c 'trap "" TERM; sleep 1000'", writes its pid
	// and process group to Path, then sleeps for Sleep ignoring its context
	// (and SIGTERM too if IgnoreTerm).
	Grandchild = executor.NewHandler("executortest.grandchild", grandchild, nil)
	// Log writes "hello from task" with text=Text to its call's logger.
	Log = executor.NewHandler("executortest.log", logLine, nil)
	// Exit calls os.Exit(N); for out-of-process executors only.
	Exit = executor.NewHandler("executortest.exit", exit, nil)
	// Kill sends SIGKILL to its own process; for out-of-process executors only.
	Kill = executor.NewHandler("executortest.kill", kill, nil)
	// BadOutput returns a value that JSON cannot encode (a channel).
	BadOutput = executor.NewHandler("executortest.bad-output", badOutput, nil)
	// Goexit calls runtime.Goexit.
	Goexit = executor.NewHandler("executortest.goexit", goexit, nil)
	// OwnDeadline returns an error "<Text>: context deadline exceeded" of
	// a deadline of its own making (as an HTTP client's): a failure, not a
	// timeout.
	OwnDeadline = executor.NewHandler("executortest.own-deadline", ownDeadline, nil)
	// Fatal returns an error of class executor.ClassFatal with message Text.
	Fatal = executor.NewHandler("executortest.fatal", fatal, nil)
	// Big returns Reply{N: N, Text: N bytes of 'x'}, for result size limits.
	Big = executor.NewHandler("executortest.big", big, nil)
	// Unregistered is like Echo but is not in Registry, so an
	// out-of-process worker does not know it.
	Unregistered = executor.NewHandler("executortest.unregistered", echo, nil)
)

// Registry returns a new registry with every task of the suite except
// Unregistered. An out-of-process executor's worker must serve it: call it
// from the worker hook in the test binary's TestMain.
func Registry() *executor.Registry {
	r, err := executor.NewRegistry(Echo, Whoami, Fail, Skip, Sleep, Append, Deadline, Panic,
		Spawn, Grandchild, Log, Exit, Kill, BadOutput, Goexit, OwnDeadline, Fatal, Big)
	if err != nil {
		panic("executortest: " + err.Error())
	}
	return r
}

func echo(ctx context.Context, a Args) (Reply, error) {
	_, has := ctx.Deadline()
	return Reply{N: a.N * 2, Text: a.Text, HasDeadline: has}, nil
}

func whoami(ctx context.Context, a Args) (Reply, error) {
	id, _ := executor.CallInfo(ctx)
	return Reply{Identity: id}, nil
}

func fail(ctx context.Context, a Args) (Reply, error) {
	return Reply{N: a.N}, fmt.Errorf("%s: %w", a.Text, ErrTask)
}

// classError is an error of a given class, as the task package's signals are.
type classError struct {
	class executor.Class
	msg   string
}

func (e *classError) Error() string              { return e.msg }
func (e *classError) ErrorClass() executor.Class { return e.class }

func skip(ctx context.Context, a Args) (Reply, error) {
	return Reply{}, &classError{class: executor.ClassSkip, msg: a.Text}
}

func sleep(ctx context.Context, a Args) (Reply, error) {
	if a.IgnoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if !a.Cooperative {
		time.Sleep(a.Sleep)
		return sleptReply(ctx, a), nil
	}
	t := time.NewTimer(a.Sleep)
	defer t.Stop()
	select {
	case <-t.C:
		return sleptReply(ctx, a), nil
	case <-ctx.Done():
		return Reply{}, ctx.Err()
	}
}

func sleptReply(ctx context.Context, a Args) Reply {
	d, ok := ctx.Deadline()
	return Reply{N: a.N, Text: a.Text, ReturnedLate: ok && !time.Now().Before(d)}
}

func goexit(ctx context.Context, a Args) (Reply, error) {
	runtime.Goexit()
	return Reply{}, nil
}

func ownDeadline(ctx context.Context, a Args) (Reply, error) {
	own, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-own.Done()
	return Reply{}, fmt.Errorf("%s: %w", a.Text, own.Err())
}

func fatal(ctx context.Context, a Args) (Reply, error) {
	return Reply{}, &classError{class: executor.ClassFatal, msg: a.Text}
}

func big(ctx context.Context, a Args) (Reply, error) {
	return Reply{N: a.N, Text: strings.Repeat("x", a.N)}, nil
}

func appendTicks(ctx context.Context, a Args) (Reply, error) {
	if a.IgnoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	f, err := os.OpenFile(a.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return Reply{}, err
	}
	defer f.Close()
	end := time.Now().Add(a.Sleep)
	for n := 0; time.Now().Before(end); n++ {
		if _, err := fmt.Fprintf(f, "tick %d\n", n); err != nil {
			return Reply{}, err
		}
		if !a.Cooperative {
			time.Sleep(a.Tick)
			continue
		}
		t := time.NewTimer(a.Tick)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Reply{N: n}, ctx.Err()
		}
	}
	return Reply{}, nil
}

// DeadlineReport is what the Deadline task writes to its file: one line
// when it starts, another once its context has ended.
type DeadlineReport struct {
	HasDeadline bool
	Deadline    time.Time
	Ended       bool   // second line only
	Err         string // ctx.Err()
	Cause       string // context.Cause(ctx)
	IsTimeout   bool   // whether the cause is an *executor.TimeoutError
	Enforcement string // its Enforcement
}

func deadline(ctx context.Context, a Args) (Reply, error) {
	f, err := os.OpenFile(a.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return Reply{}, err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	d, has := ctx.Deadline()
	if err := enc.Encode(DeadlineReport{HasDeadline: has, Deadline: d}); err != nil {
		return Reply{}, err
	}
	// Wait for the context, but not forever: against an executor that
	// never ends it, the check must fail, not hang.
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		return Reply{}, errors.New("executortest: the context did not end within an hour")
	}
	r := DeadlineReport{Ended: true, Err: fmt.Sprint(ctx.Err()), Cause: fmt.Sprint(context.Cause(ctx))}
	var te *executor.TimeoutError
	if errors.As(context.Cause(ctx), &te) {
		r.IsTimeout, r.Enforcement = true, te.Enforcement.String()
	}
	return Reply{}, enc.Encode(r)
}

func panicky(ctx context.Context, a Args) (Reply, error) {
	panic(a.Text)
}

func spawn(ctx context.Context, a Args) (Reply, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	sum := a.N
	for i := 1; i <= 3; i++ {
		wg.Go(func() {
			mu.Lock()
			sum += i
			mu.Unlock()
		})
	}
	out, err := echoCommand(ctx, a.Text).Output() // proc_*.go: sh on Unix, cmd on Windows
	wg.Wait()
	if err != nil {
		return Reply{}, fmt.Errorf("spawn: %w", err)
	}
	return Reply{N: sum, Text: strings.TrimSpace(string(out))}, nil
}

// GrandchildReport is what the Grandchild task writes to its file.
type GrandchildReport struct {
	PID  int // the shell's pid
	PGID int // its process group, the worker's
}

func grandchild(ctx context.Context, a Args) (Reply, error) {
	if a.IgnoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	cmd := exec.Command("sh", "-c", `trap "" TERM; sleep 1000`)
	if err := cmd.Start(); err != nil {
		return Reply{}, err
	}
	pgid, err := groupOf(cmd.Process.Pid)
	if err != nil {
		return Reply{}, err
	}
	data, _ := json.Marshal(GrandchildReport{PID: cmd.Process.Pid, PGID: pgid})
	if err := os.WriteFile(a.Path, data, 0o644); err != nil {
		return Reply{}, err
	}
	time.Sleep(a.Sleep)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return Reply{}, nil
}

func logLine(ctx context.Context, a Args) (Reply, error) {
	executor.Logger(ctx).Info("hello from task", "text", a.Text)
	return Reply{N: a.N}, nil
}

func exit(ctx context.Context, a Args) (Reply, error) {
	fmt.Fprintln(os.Stderr, "executortest: exiting with status "+strconv.Itoa(a.N))
	os.Exit(a.N)
	return Reply{}, nil
}

func kill(ctx context.Context, a Args) (Reply, error) {
	fmt.Fprintln(os.Stderr, "executortest: killing myself")
	self, err := os.FindProcess(os.Getpid())
	if err == nil {
		err = self.Kill() // SIGKILL on Unix, TerminateProcess on Windows
	}
	time.Sleep(time.Minute)
	return Reply{}, err
}

func badOutput(ctx context.Context, a Args) (any, error) {
	return make(chan int), nil
}
