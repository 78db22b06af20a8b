//go:build windows

package procgroup

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Job is a Windows Job Object that holds a process and every process it
// starts (a process created by a member of a job is in the job too, and
// none may break away). It is what a process group is on Unix: the unit
// that is killed at once, and that is gone when no process of it is left.
// The job dies with this process: its handle is not inherited, and the job
// is created with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, so when the last
// handle closes (Close, or this process's death, which closes every handle
// it holds) Windows terminates every process in it.
type Job struct {
	mu     sync.Mutex
	handle windows.Handle // 0 once closed
}

// NewJob creates an empty job that kills its processes when it is closed.
func NewJob() (*Job, error) {
	h, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("procgroup: CreateJobObject: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{
			LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
		},
	}
	if _, err := windows.SetInformationJobObject(h, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		_ = windows.CloseHandle(h)
		return nil, fmt.Errorf("procgroup: SetInformationJobObject(KILL_ON_JOB_CLOSE): %w", err)
	}
	return &Job{handle: h}, nil
}

// Assign puts process pid in the job. Start the process suspended
// (CREATE_SUSPENDED) and Resume it after Assign, so that it cannot start
// a process outside the job first. A job that is closed is an error.
func (j *Job) Assign(pid int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.handle == 0 {
		return errors.New("procgroup: Assign on a closed job")
	}
	p, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(pid))
	if err != nil {
		return fmt.Errorf("procgroup: OpenProcess(%d): %w", pid, err)
	}
	defer windows.CloseHandle(p)
	if err := windows.AssignProcessToJobObject(j.handle, p); err != nil {
		return fmt.Errorf("procgroup: AssignProcessToJobObject(%d): %w", pid, err)
	}
	return nil
}

// Terminate kills every process of the job at once, with exit code 1. A
// job with no process left, or a closed one, is not an error: killing is
// idempotent.
func (j *Job) Terminate() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.handle == 0 {
		return nil
	}
	if err := windows.TerminateJobObject(j.handle, 1); err != nil {
		return fmt.Errorf("procgroup: TerminateJobObject: %w", err)
	}
	return nil
}

// jobAccounting is JOBOBJECT_BASIC_ACCOUNTING_INFORMATION.
type jobAccounting struct {
	TotalUserTime             int64
	TotalKernelTime           int64
	ThisPeriodTotalUserTime   int64
	ThisPeriodTotalKernelTime int64
	TotalPageFaultCount       uint32
	TotalProcesses            uint32
	ActiveProcesses           uint32
	TotalTerminatedProcesses  uint32
}

// Active returns how many processes of the job are still running. A closed
// job has none.
func (j *Job) Active() (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.handle == 0 {
		return 0, nil
	}
	var info jobAccounting
	if err := windows.QueryInformationJobObject(j.handle, windows.JobObjectBasicAccountingInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)), nil); err != nil {
		return 0, fmt.Errorf("procgroup: QueryInformationJobObject: %w", err)
	}
	return int(info.ActiveProcesses), nil
}

// Drain waits until no process of the job is left or the deadline passes,
// and reports whether the job is empty. It polls, first every 50µs, then
// less often, up to every 5ms; a deadline in the past gives one check. A
// failed query counts as "not empty".
func (j *Job) Drain(deadline time.Time) bool {
	pause := 50 * time.Microsecond
	for {
		if n, err := j.Active(); err == nil && n == 0 {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// Close closes the job's handle, which terminates every process still in
// it (KILL_ON_JOB_CLOSE). Closing twice does nothing more.
func (j *Job) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.handle == 0 {
		return nil
	}
	err := windows.CloseHandle(j.handle)
	j.handle = 0
	if err != nil {
		return fmt.Errorf("procgroup: CloseHandle(job): %w", err)
	}
	return nil
}

var procNtResumeProcess = windows.NewLazySystemDLL("ntdll.dll").NewProc("NtResumeProcess")

// Resume resumes every thread of process pid, which was started with
// CREATE_SUSPENDED (os/exec gives no handle to its main thread; ntdll's
// NtResumeProcess needs none).
func Resume(pid int) error {
	p, err := windows.OpenProcess(windows.PROCESS_SUSPEND_RESUME, false, uint32(pid))
	if err != nil {
		return fmt.Errorf("procgroup: OpenProcess(%d): %w", pid, err)
	}
	defer windows.CloseHandle(p)
	if err := procNtResumeProcess.Find(); err != nil {
		return fmt.Errorf("procgroup: NtResumeProcess: %w", err)
	}
	r, _, _ := procNtResumeProcess.Call(uintptr(p))
	if r != 0 { // an NTSTATUS
		return fmt.Errorf("procgroup: NtResumeProcess(%d): %w", pid, windows.NTStatus(r))
	}
	return nil
}

// Alive reports whether process pid is running.
func Alive(pid int) bool {
	p, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION|windows.SYNCHRONIZE, false, uint32(pid))
	if err != nil {
		return errors.Is(err, windows.ERROR_ACCESS_DENIED) // exists, not ours to open
	}
	defer windows.CloseHandle(p)
	ev, err := windows.WaitForSingleObject(p, 0)
	return err == nil && ev == uint32(windows.WAIT_TIMEOUT)
}

// SetChildSubreaper fails on Windows, which has no child subreapers: a
// process's descendants are held by its Job instead. The error wraps
// errors.ErrUnsupported.
func SetChildSubreaper() error {
	return fmt.Errorf("procgroup: child subreaper on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// RSS fails on Windows: this package does not read another process's
// working set. The error wraps errors.ErrUnsupported.
func RSS(pid int) (int64, error) {
	return 0, fmt.Errorf("procgroup: resident memory of process %d on %s: %w", pid, runtime.GOOS, errors.ErrUnsupported)
}
