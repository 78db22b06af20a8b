package pool

import (
	"math"
	"sync/atomic"
	"time"
)

// never is the watchdog's next wake-up time when no call has a deadline.
const never = math.MaxInt64

// watchdog enforces every worker's deadline with one timer. Each worker
// publishes its call's deadline in its own atomic word; the watchdog sleeps
// until the earliest one it knows of, then looks at every worker, answers
// the calls whose deadline has passed and sleeps again. A call only
// touches the shared word next when its deadline is earlier than the
// watchdog's next wake-up, which, for calls of one limit, happens about
// once per limit period, not once per call.
type watchdog struct {
	next atomic.Int64  // when the watchdog will look next, ns since the epoch
	wake chan struct{} // size one: "look again now"
}

func (wd *watchdog) init() {
	wd.next.Store(never)
	wd.wake = make(chan struct{}, 1)
}

// arm makes sure the watchdog looks at or before d; workers call it.
func (wd *watchdog) arm(d int64) {
	if wd.lower(d) {
		select {
		case wd.wake <- struct{}{}:
		default:
		}
	}
}

// lower sets next to d if d is earlier, and reports whether it did.
func (wd *watchdog) lower(d int64) bool {
	for {
		n := wd.next.Load()
		if d >= n {
			return false
		}
		if wd.next.CompareAndSwap(n, d) {
			return true
		}
	}
}

// watch is the watchdog goroutine. It ends after the last worker has.
func (e *Executor) watch() {
	defer close(e.drained)
	defer e.answers.Wait() // the timeouts it handed off are delivered

	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-e.workersGone:
			return
		case <-e.wd.wake:
		case <-t.C:
		}
		// From here on, a worker whose deadline comes before the next
		// wake-up lowers next and wakes us again, so none is missed
		// between the scan and the reset below.
		e.wd.next.Store(never)
		now := time.Now()
		nowNs := e.mono(now)
		soonest := int64(never)
		for _, w := range e.workers {
			if p := phaseOf(w.state.Load()); p != running && p != held {
				continue
			}
			d := w.deadline.Load()
			switch {
			case d == 0:
			case d <= nowNs:
				w.expire(now, nowNs)
			case d < soonest:
				soonest = d
			}
		}
		e.wd.lower(soonest)
		if n := e.wd.next.Load(); n != never {
			t.Reset(time.Duration(n - nowNs))
		}
	}
}
