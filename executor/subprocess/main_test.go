//go:build linux

package subprocess_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
	"github.com/flowline-go/flowline/internal/procgroup"
)

// helperEnv makes the test binary play another program: see TestMain.
const helperEnv = "SUBPROCESS_TEST_HELPER"

// The package's own tasks, served by the workers with the suite's.
var (
	pidTask = executor.NewHandler("subprocess.pid", func(ctx context.Context, _ struct{}) (int, error) {
		return os.Getpid(), nil
	}, nil)
	// garbageTask writes bytes that are not a frame on the protocol pipe.
	garbageTask = executor.NewHandler("subprocess.garbage", func(ctx context.Context, _ struct{}) (int, error) {
		_, err := os.NewFile(4, "protocol").Write([]byte("hello, this is not a frame\n"))
		<-ctx.Done()
		return 0, err
	}, nil)
	// oversizeTask announces a frame of 1 GiB on the protocol pipe.
	oversizeTask = executor.NewHandler("subprocess.oversize", func(ctx context.Context, _ struct{}) (int, error) {
		_, err := os.NewFile(4, "protocol").Write(binary.BigEndian.AppendUint32(nil, 1<<30))
		<-ctx.Done()
		return 0, err
	}, nil)
	// printTask prints its text to stdout and to stderr.
	printTask = executor.NewHandler("subprocess.print", func(ctx context.Context, text string) (int, error) {
		fmt.Println("out: " + text)
		fmt.Fprintln(os.Stderr, "err: "+text)
		return os.Getpid(), nil
	}, nil)
	// bigTask returns a string of n bytes.
	bigTask = executor.NewHandler("subprocess.big", func(ctx context.Context, n int) (string, error) {
		return strings.Repeat("x", n), nil
	}, nil)
	// hogTask allocates and touches 8 MiB every few milliseconds until its
	// context ends.
	hogTask = executor.NewHandler("subprocess.hog", func(ctx context.Context, _ struct{}) (int, error) {
		var keep [][]byte
		for ctx.Err() == nil {
			b := make([]byte, 8<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
			time.Sleep(5 * time.Millisecond)
		}
		return len(keep), ctx.Err()
	}, nil)
	// goPanicTask panics in a goroutine of its own, which kills the worker.
	goPanicTask = executor.NewHandler("subprocess.go-panic", func(ctx context.Context, text string) (int, error) {
		go panic(text)
		<-ctx.Done()
		return 0, ctx.Err()
	}, nil)
	// ignoreTermTask ignores SIGTERM for the rest of the process's life.
	ignoreTermTask = executor.NewHandler("subprocess.ignore-term", func(ctx context.Context, _ struct{}) (int, error) {
		signal.Ignore(syscall.SIGTERM)
		return os.Getpid(), nil
	}, nil)
	// orphanTask starts "sh -c 'trap "" TERM; sleep 1000'", leaves it
	// running, and returns "<worker pid> <shell pid>" after a pause that
	// lets a concurrent call start another worker.
	orphanTask = executor.NewHandler("subprocess.orphan", func(ctx context.Context, _ struct{}) (string, error) {
		cmd := exec.Command("sh", "-c", `trap "" TERM; sleep 1000`)
		if err := cmd.Start(); err != nil {
			return "", err
		}
		time.Sleep(200 * time.Millisecond)
		return fmt.Sprintf("%d %d", os.Getpid(), cmd.Process.Pid), nil
	}, nil)
)

func registry() *executor.Registry {
	reg := executortest.Registry()
	for _, h := range []*executor.Handler{pidTask, garbageTask, oversizeTask, printTask, bigTask, hogTask,
		goPanicTask, ignoreTermTask, orphanTask, double, cleanupTask, chattyTask, goexitTask, traceTask, bytesTask,
		logOnceTask, directGarbageTask, directMovedTask} {
		if err := reg.Register(h); err != nil {
			panic(err)
		}
	}
	return reg
}

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "no-hook-exit":
		// A program whose main forgot ServeIfWorker and ends.
		fmt.Fprintln(os.Stderr, "helper: a main without the hook")
		os.Exit(0)
	case "no-hook-hang":
		// A program whose main forgot ServeIfWorker and runs on.
		time.Sleep(time.Hour)
		os.Exit(0)
	case "parent":
		os.Exit(playParent())
	case "fresh-echo":
		os.Exit(freshEcho())
	case "pipe-echo":
		os.Exit(pipeEcho())
	case "sleep":
		os.Exit(sleepForever())
	}
	subprocess.ServeIfWorker(registry())
	// Workers die with their parent: the subreaper setting makes orphans of
	// every test come back here, where the final check finds them.
	if err := procgroup.SetChildSubreaper(); err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(noProcessLeft{m})
}

// noProcessLeft runs the tests, then fails the run if any process they
// started is still there, zombies included.
type noProcessLeft struct{ m *testing.M }

func (n noProcessLeft) Run() int {
	code := n.m.Run()
	// Processes killed just now may take a moment to be reaped by their
	// owner (a helper's exec.Cmd); give them a second.
	deadline := time.Now().Add(time.Second)
	left := leftovers()
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		left = leftovers()
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "subprocess tests left processes behind: %+v\n", left)
		buf := make([]byte, 1<<20) // who might still owe them a Wait
		fmt.Fprintf(os.Stderr, "goroutines:\n%s\n", buf[:runtime.Stack(buf, true)])
		if code == 0 {
			code = 1
		}
	}
	return code
}

// leftovers lists the children of this process (every orphan of its
// workers comes back to it) and any process marked as one of its workers.
func leftovers() []procgroup.Process {
	all, err := procgroup.Processes()
	if err != nil {
		panic(err)
	}
	self := os.Getpid()
	mark := []byte(subprocess.WorkerMark(self))
	var left []procgroup.Process
	for _, p := range all {
		if p.PPID == self {
			left = append(left, p)
			continue
		}
		env, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/environ")
		if err == nil && bytes.Contains(env, mark) {
			left = append(left, p)
		}
	}
	return left
}

// playParent is the "parent" helper: it starts two workers that each leave
// a grandchild running, prints "<worker> <grandchild> <worker> <grandchild>"
// and waits to be killed.
func playParent() int {
	_ = os.Unsetenv(helperEnv) // its workers are plain workers
	ex, err := subprocess.New(subprocess.Options{Workers: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var futures []*executor.Future
	for range 2 {
		f, err := ex.Submit(context.Background(), executor.Call{Handler: orphanTask})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		futures = append(futures, f)
	}
	var out []string
	for _, f := range futures {
		v, err := f.Wait(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		out = append(out, v.(string))
	}
	fmt.Println(strings.Join(out, " "))
	select {} // until SIGKILL
}

// freshEcho is the "fresh-echo" helper: one call of the suite's Echo task
// per process, the input on stdin and the result on stdout, as a program
// that starts a process per call would do it.
func freshEcho() int {
	in, err := bufio.NewReader(os.Stdin).ReadBytes('\n')
	if err != nil {
		return 1
	}
	out, err := executortest.Echo.Run(context.Background(), executor.Raw(in))
	if err != nil {
		return 1
	}
	data, err := executortest.Echo.EncodeOutput(out)
	if err != nil {
		return 1
	}
	_, err = os.Stdout.Write(append(data, '\n'))
	if err != nil {
		return 1
	}
	return 0
}

// alive reports whether process (pid > 0) or group (pid < 0) exists,
// zombies included.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// workerPID returns the pid in a Future.Worker string "pid N".
func workerPID(t testing.TB, f *executor.Future) int {
	t.Helper()
	s, ok := strings.CutPrefix(f.Worker(), "pid ")
	if !ok {
		t.Fatalf("Worker() = %q, want \"pid N\"", f.Worker())
	}
	pid, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// errorsAs is errors.As for benchmarks, which have no require.ErrorAs.
func errorsAs(err error, target any) bool { return errors.As(err, target) }
