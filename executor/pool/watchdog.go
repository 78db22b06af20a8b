package pool

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowline-go/flowline/executor"
)

// limitTimer enforces a worker's deadlines with one runtime timer of the
// worker's own (a time.AfterFunc), made at its first limited call and kept.
// At a deadline, the timer's function answers the call right there, on
// the goroutine the runtime starts for it: no scan of other workers, no
// batching, no further hand-off, so a timeout reaches its caller as
// promptly as a context.WithTimeout wakes its waiter.
//
// The timer is armed lazily: a call whose deadline is at or after the one
// the timer is armed for leaves it alone, and when it fires early (for an
// earlier call's deadline) it re-arms itself for the current call's. Calls
// of one limit then touch the runtime's timer about once per limit period
// per worker, not twice per call.
type limitTimer struct {
	mu    sync.Mutex   // serialises arming, so that armed says what t will do
	armed atomic.Int64 // when t fires, ns since the executor's epoch; 0: not armed
	t     *time.Timer  // made by the first arm
}

// arm makes sure w's timer fires at or before d (ns since the epoch), in
// at most dur. The worker calls it after publishing d in w.deadline, the
// timer's function when it fires before the current deadline.
//
// Every pending or running timer function is counted in e.answers, so
// that the executor's end waits for the answers they deliver.
func (w *worker) arm(d int64, dur time.Duration) {
	lt := &w.lt
	if a := lt.armed.Load(); a != 0 && a <= d {
		return
	}
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if a := lt.armed.Load(); a != 0 && a <= d {
		return
	}
	lt.armed.Store(d)
	w.e.answers.Add(1)
	if lt.t == nil {
		lt.t = time.AfterFunc(dur, w.fire)
	} else if lt.t.Reset(dur) {
		w.e.answers.Done() // it replaced a pending run, counted already
	}
}

// fire is the timer's function. It answers the running call if its
// deadline has passed, and otherwise re-arms the timer for it.
func (w *worker) fire() {
	e := w.e
	defer e.answers.Done()
	// Clear armed before reading the deadline; the worker publishes the
	// deadline before reading armed: one of the two sees the other, so a
	// call's deadline is never left without a timer.
	w.lt.mu.Lock()
	w.lt.armed.Store(0)
	w.lt.mu.Unlock()
	d := w.deadline.Load()
	if d == 0 {
		return // no limited call running
	}
	now := time.Now()
	nowNs := e.mono(now)
	if d > nowNs {
		w.arm(d, time.Duration(d-nowNs))
		return
	}
	w.expire(now, nowNs)
}

// stopTimer stops w's timer for good, once no worker goroutine is left.
func (w *worker) stopTimer() {
	lt := &w.lt
	lt.mu.Lock()
	if lt.t != nil && lt.t.Stop() {
		w.e.answers.Done() // its run will not happen
	}
	lt.armed.Store(0)
	lt.mu.Unlock()
}

// expire answers the running call with a timeout if its deadline, at or
// before now, is still the current one. The worker's timer calls it, on
// a goroutine of its own. It claims the call under the worker's mutex and
// answers it (the Future's OnDone callbacks) and logs after releasing it,
// so that neither a slow callback nor a slow logger holds the mutex; they
// delay only this call's answer, never another call's limit.
func (w *worker) expire(now time.Time, nowNs int64) {
	e := w.e
	w.mu.Lock()
	s := w.state.Load()
	d := w.deadline.Load()
	if phaseOf(s) != running || d == 0 || d > nowNs {
		w.mu.Unlock()
		return
	}
	if !w.state.CompareAndSwap(s, pack(s>>2, answered)) {
		w.mu.Unlock()
		return // the call returned just now
	}
	c := w.cur.call
	p := w.cur.promise
	terr := &executor.TimeoutError{
		Task:        c.Name(),
		Limit:       c.Limit,
		Elapsed:     now.Sub(w.start),
		Enforcement: executor.Soft,
	}
	e.timedOut.Add(1)
	e.abandoned.Add(1)
	// Ending the context runs no user code (context.AfterFunc functions run
	// on goroutines of their own); under the mutex, the worker cannot
	// release the context first.
	w.lctx.Expire(terr)
	w.mu.Unlock()
	complete(p, w.name, nil, terr)
	if e.logger.IsWarn() { // its arguments cost 9 allocations
		e.logger.Warn("call abandoned: its limit passed and its work is still running",
			"task", c.Name(), "run", c.RunID, "attempt", c.Attempt, "ran", terr.Elapsed, "limit", c.Limit,
			"worker", w.name)
	}
}

// watch is the goroutine that ends the executor: once the last worker
// goroutine has ended, it stops the workers' timers, waits for the
// timeouts being answered, and closes drained.
func (e *Executor) watch() {
	<-e.workersGone
	for _, w := range e.workers {
		w.stopTimer()
	}
	e.answers.Wait()
	close(e.drained)
}
