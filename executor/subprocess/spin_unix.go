//go:build linux || darwin

package subprocess

import (
	"errors"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// spinReader reads one end of a protocol pipe. While it is hot, a read
// that finds the pipe empty polls it (a non-blocking read, then
// runtime.Gosched so other goroutines run) for up to spin before it parks
// on the runtime's poller as an ordinary read does.
//
// Why: a round trip wakes the other process twice, and on a virtual
// machine whose vCPUs sleep when idle, waking one costs tens of
// microseconds, more than the rest of the round trip. A reader that polls
// for the frame it expects keeps its vCPU awake and sees the frame at
// once. It costs CPU: up to spin per wait that ends empty-handed, and all
// of the wait when frames come no further apart than spin.
//
// kick makes the reader hot: a parked read wakes (its read deadline is
// set in the past) and polls again. A reader made with linger is also hot
// for spin after each read that returned data.
//
// Polling helps only where a CPU would otherwise sleep. When, during a
// wait that polled, another thread was given this process's CPU (the
// machine is busy: our sched_yield or a preemption let it run), the next
// skipAfterContention waits do not poll: there the poll would take CPU
// from work, the other process's among it.
type spinReader struct {
	f      *os.File
	rc     syscall.RawConn
	spin   time.Duration
	linger bool
	block  bool        // sleep in ppoll rather than on the runtime's poller (see newSpinReader)
	may    func() bool // whether polling is worth it now; nil: always
	hot    atomic.Bool
	kicks  atomic.Uint64
	parked atomic.Bool  // between the last empty poll and the poller's wake-up
	skip   atomic.Int64 // waits left that do not poll, after a contended one

	poll func(fd uintptr) bool // pollRead, made once
	rd   readState             // the running Read's
}

// skipAfterContention is how many waits do not poll after one during
// which another thread was given this process's CPU (see preempted).
const skipAfterContention = 256

// newSpinReader returns a reader of f that spins as spinReader says, or f
// itself when spin is not positive or f is not pollable. While may (if not
// nil) returns false, the reader does not poll.
func newSpinReader(f *os.File, spin time.Duration, linger bool, may func() bool) io.Reader {
	if spin <= 0 {
		return f
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return f
	}
	return &spinReader{f: f, rc: rc, spin: spin, linger: linger, may: may}
}

// newBlockingReader is newSpinReader (with spin 0 allowed: no polling) for
// a reader that, after its polls, sleeps in the kernel (ppoll on Linux)
// instead of on the runtime's poller: the writer's wake-up then goes
// straight to the sleeping thread, as it does for a plain blocking read,
// where the poller costs an epoll_wait, a thread wake-up and a goroutine
// switch more. Such a read cannot be interrupted: kick only makes it poll
// when it has not slept yet, and the file must not be closed while it
// sleeps. For a worker's calls pipe, which it reads until its parent goes.
// Elsewhere than on Linux it is newSpinReader.
func newBlockingReader(f *os.File, spin time.Duration) io.Reader {
	if !canBlock {
		return newSpinReader(f, spin, false, nil)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return f
	}
	return &spinReader{f: f, rc: rc, spin: spin, block: true}
}

// kick makes the reader hot, and wakes it if it is parked.
func kick(r io.Reader) {
	s, ok := r.(*spinReader)
	if !ok {
		return
	}
	s.kicks.Add(1)
	if s.may != nil && !s.may() {
		return
	}
	if s.skip.Load() > 0 { // a wait that does not poll
		s.skip.Add(-1)
		return
	}
	s.hot.Store(true)
	if s.parked.Load() {
		_ = s.f.SetReadDeadline(time.Unix(1, 0)) // wakes the parked read; Read clears it
	}
}

// Read reads into p as os.File.Read does, polling first while hot. One
// Read runs at a time (each pipe end has one reader): its state lives in
// the reader, so that a read allocates nothing.
func (s *spinReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.poll == nil {
		s.poll = s.pollRead // one method value for the reader's life
	}
	st := &s.rd
	for {
		*st = readState{p: p}
		rerr := s.rc.Read(s.poll)
		// p is not kept alive by the reader.
		st.p = nil
		if errors.Is(rerr, os.ErrDeadlineExceeded) { // a kick woke the parked read
			s.parked.Store(false)
			_ = s.f.SetReadDeadline(time.Time{})
			continue
		}
		if rerr != nil {
			return 0, rerr
		}
		if st.err != nil {
			return 0, st.err
		}
		if st.n == 0 {
			return 0, io.EOF
		}
		s.hot.Store(s.linger)
		return st.n, nil
	}
}

// readState is one Read's, kept in the reader (see Read).
type readState struct {
	p        []byte
	n        int
	err      error
	until    time.Time
	seen     uint64
	spinning bool
	switches int64
}

// endSpin ends a poll that began with spinning set.
func (s *spinReader) endSpin() {
	st := &s.rd
	if st.spinning && preempted() > st.switches {
		// Another thread wanted this CPU while we polled: polling
		// takes CPU from work here, and no CPU sleeps.
		s.skip.Store(skipAfterContention)
	}
	st.spinning = false
}

// pollRead is Read's function for syscall.RawConn.Read: it reports
// whether the read is done (true) or the poller must wait (false).
func (s *spinReader) pollRead(fd uintptr) bool {
	st := &s.rd
	s.parked.Store(false)
	for i := 0; ; i++ {
		st.n, st.err = syscall.Read(int(fd), st.p)
		if st.err == syscall.EINTR {
			continue
		}
		if st.err != syscall.EAGAIN {
			s.endSpin()
			return true
		}
		if s.hot.Load() && !st.spinning {
			switch {
			case s.may != nil && !s.may():
				s.hot.Store(false)
			case s.skip.Load() > 0:
				s.skip.Add(-1)
				s.hot.Store(false)
			default:
				st.spinning, st.switches = true, preempted()
			}
		}
		if s.hot.Load() && i&7 == 0 { // the clock costs about as much as a poll here
			now := time.Now()
			if k := s.kicks.Load(); k != st.seen || st.until.IsZero() {
				st.seen, st.until = k, now.Add(s.spin) // a kick starts the time again
			} else if !now.Before(st.until) || s.may != nil && !s.may() {
				s.hot.Store(false)
			}
		}
		if s.hot.Load() {
			runtime.Gosched() // this process's goroutines first,
			osYield()         // then the other threads of this CPU, such as the other process's
			continue
		}
		s.endSpin()
		if s.block {
			if waitReadable(int(fd)) != nil {
				return false // the poller then
			}
			continue
		}
		// Park, unless a kick came since the last look: kick sets
		// hot before it looks at parked.
		s.parked.Store(true)
		if s.hot.Load() {
			s.parked.Store(false)
			continue
		}
		return false
	}
}
