package flow

import "time"

// stepClock is the clock a run in memory gives its task runners
// (task.RunOptions.Clock). A reading serves twice: the end of an attempt,
// read as its completion is handled, is also the start of the next
// attempt the scheduler begins, so that a task run costs one clock read
// where it cost two (time.Now is about 50 ns on a VM: 12-16% of a flow
// task's CPU in profiles of BenchmarkLattice32). The scheduler expires
// the reading wherever more than its own quick code may have run since
// (see run.expireClock): an event handled (the loop may have slept before
// it), a call submitted (executor/local runs the task in Submit), a limit
// acquired (it may ask a store). So a shared reading is earlier than a
// new one would be by at most what the scheduler did in one step: its
// bookkeeping, and the hooks and input functions that must be quick
// (RunOptions.OnState, Convert, Combine2). A durable run reads time.Now
// every time: its scheduler also writes to its store.
//
// A new reading is the last time.Now reading plus the monotonic time
// since (time.Since reads only the monotonic clock: about 26 ns against
// time.Now's 50 on the same VM), for up to anchorFor after it; then
// time.Now again. Durations between readings are the monotonic clock's,
// as time.Now's are. A reading's wall clock follows the monotonic one from
// the last time.Now, so after a step of the wall clock (a settimeofday, a
// laptop's resume) it lags the step by up to anchorFor of monotonic time.
//
// Only the goroutine driving the run reads it.
type stepClock struct {
	t      time.Time
	fresh  bool             // t may serve one more reading
	anchor time.Time        // the last time.Now reading; zero before the first
	now    func() time.Time // c.read, made once
}

// anchorFor is how long readings follow the monotonic clock from one
// time.Now reading.
const anchorFor = time.Second

func newStepClock() *stepClock {
	c := &stepClock{}
	c.now = c.read
	return c
}

// read returns the time: t once more if it is fresh, else a new reading.
func (c *stepClock) read() time.Time {
	if c.fresh {
		c.fresh = false
		return c.t
	}
	d := anchorFor // no anchor yet
	if !c.anchor.IsZero() {
		d = time.Since(c.anchor)
	}
	if d >= 0 && d < anchorFor {
		c.t = c.anchor.Add(d)
	} else {
		c.anchor = time.Now()
		c.t = c.anchor
	}
	c.fresh = true
	return c.t
}

// expireClock makes the run's next clock reading a new one.
func (r *run) expireClock() {
	if r.clock != nil {
		r.clock.fresh = false
	}
}
