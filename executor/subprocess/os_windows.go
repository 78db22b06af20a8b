//go:build windows

package subprocess

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/flowline-go/flowline/internal/procgroup"
)

// envHandles passes a worker its inherited handles, as
// "<calls>,<results>,<stop event>": Windows has no fd 3 and fd 4
// (exec.Cmd.ExtraFiles is not supported there), and an inherited handle
// keeps its value in the child.
const envHandles = "FLOWLINE_SUBPROCESS_HANDLES"

// group is the process tree of one worker: on Windows a Job Object that
// holds the worker and everything it starts, and dies with this process
// (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE). Windows has no SIGTERM: the stop
// request is an event the worker inherits and waits on.
type group struct {
	job  *procgroup.Job
	stop windows.Handle // our handle of the worker's stop event
}

// prepare creates the worker's stop event and gives cmd its inherited
// handles. The worker starts suspended (CREATE_SUSPENDED), so that attach
// puts it in its job before it runs a single instruction.
// Windows has no direct pipe (directPipe): direct is nil.
func (g *group) prepare(cmd *exec.Cmd, calls, results, direct *os.File) error {
	sa := &windows.SecurityAttributes{InheritHandle: 1}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	ev, err := windows.CreateEvent(sa, 1, 0, nil)
	if err != nil {
		return fmt.Errorf("CreateEvent: %w", err)
	}
	g.stop = ev
	handles := []syscall.Handle{syscall.Handle(calls.Fd()), syscall.Handle(results.Fd()), syscall.Handle(ev)}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		AdditionalInheritedHandles: handles,
		CreationFlags:              windows.CREATE_SUSPENDED,
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d,%d,%d", envHandles, handles[0], handles[1], handles[2]))
	return nil
}

// attach puts the suspended worker cmd just started in a new job, then
// resumes it.
func (g *group) attach(cmd *exec.Cmd) error {
	job, err := procgroup.NewJob()
	if err != nil {
		return err
	}
	g.job = job
	if err := job.Assign(cmd.Process.Pid); err != nil {
		return err
	}
	return procgroup.Resume(cmd.Process.Pid)
}

// term asks the worker to stop: it sets the worker's stop event, which the
// worker handles as SIGTERM on Unix (it ends the task's context and exits
// once the task returns).
func (g *group) term() error {
	if err := windows.SetEvent(g.stop); err != nil {
		return fmt.Errorf("SetEvent: %w", err)
	}
	return nil
}

// kill terminates every process of the job.
func (g *group) kill() error {
	if g.job == nil {
		return os.ErrProcessDone
	}
	return g.job.Terminate()
}

// drain waits until no process of the job is left or the deadline passes.
// Windows has no zombies: foreignZombies does not apply.
func (g *group) drain(deadline time.Time, foreignZombies bool) bool {
	if g.job == nil {
		return true
	}
	return g.job.Drain(deadline)
}

// survivors describes what is left of the job, for a log line.
func (g *group) survivors() string {
	if g.job == nil {
		return "no job"
	}
	n, err := g.job.Active()
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d processes still in the job", n)
}

// release closes the job (which terminates whatever is still in it) and
// the stop event.
func (g *group) release() {
	if g.job != nil {
		_ = g.job.Close()
	}
	if g.stop != 0 {
		_ = windows.CloseHandle(g.stop)
		g.stop = 0
	}
}

// rss is not available on Windows; New refuses Options.MemoryLimit there.
func rss(pid int) (int64, error) { return procgroup.RSS(pid) }

// becomeSubreaper does nothing on Windows: a worker's descendants are held
// by its job, not reparented.
func becomeSubreaper() (bool, error) { return false, nil }

// stopper is the worker's side of its stop event.
type stopper struct{ ev windows.Handle }

// directPipe says that workers have a direct pipe here: not on Windows,
// where a call's result always comes on the results pipe.
const directPipe = false

// workerFiles returns the worker's ends of the protocol pipes and its stop
// event, from the handles named by envHandles; direct is nil (directPipe).
func workerFiles() (calls, results, direct *os.File, stop stopper, err error) {
	spec := os.Getenv(envHandles)
	_ = os.Unsetenv(envHandles)
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return nil, nil, nil, stopper{}, fmt.Errorf("started as a worker without its handles (%s=%q)", envHandles, spec)
	}
	var hs [3]uintptr
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, nil, nil, stopper{}, fmt.Errorf("bad %s=%q: %w", envHandles, spec, err)
		}
		hs[i] = uintptr(v)
	}
	return os.NewFile(hs[0], "flowline-calls"), os.NewFile(hs[1], "flowline-results"), nil, stopper{ev: windows.Handle(hs[2])}, nil
}

// watch delivers the parent's stop request on c as a SIGTERM. The
// goroutine lives as long as the worker process.
func (s stopper) watch(c chan<- os.Signal) {
	go func() {
		if _, err := windows.WaitForSingleObject(s.ev, windows.INFINITE); err != nil {
			return // an invalid handle: the parent stops this worker by its job
		}
		c <- syscall.SIGTERM
	}()
}

// rewatch does nothing: a task cannot turn the stop event off.
func (s stopper) rewatch(c chan<- os.Signal) {}

// ownGroup returns 0: a worker on Windows is in a job, not a group.
func ownGroup() int { return 0 }

// killOwnGroup does nothing on Windows: when the parent dies, its handle of
// the worker's job closes, and Windows terminates every process of the job
// (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE).
func killOwnGroup(pid, pgid int) {}

// watchHangup reports false: on Windows the worker reads its calls pipe on
// a goroutine of its own while a call runs, to see the parent's death (see
// os_linux.go).
func watchHangup(f *os.File, lost func()) bool { return false }
