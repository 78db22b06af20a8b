package executor

import (
	"context"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Future is the pending result of one submitted call. It completes exactly
// once; its result never changes afterwards. Executors create futures with
// NewPromise or Completed; the zero Future is a pending one that only an
// executor's SubmitFuture can complete (see FutureSubmitter).
type Future struct {
	state      atomic.Uint32 // futurePending, futureCompleting, futureSealed, futureDone
	deliveries int32         // next to state: the two fill one word
	mu         sync.Mutex    // guards done, first and more while pending
	done       chan struct{} // made on first demand, closed at completion
	first      func()        // the first OnDone callback: most futures have one, kept without a slice
	more       []func()      // any further callbacks
	value      any
	err        error
	worker     string
	started    time.Duration // since epoch, plus one; zero: not known
}

// epoch is the origin of Future.started: a duration keeps the monotonic
// clock reading in 8 bytes, where a time.Time takes 24.
var epoch = time.Now()

const (
	futurePending    uint32 = iota
	futureCompleting        // Complete won: it writes the result, then takes the lock
	futureSealed            // Complete has taken the callbacks and is about to store futureDone
	futureDone
)

// awaitDone waits out the few instructions between futureSealed and
// futureDone, for Done and OnDone calls that found the future sealed: they
// must not return before Complete's last touch of the future, after which
// its owner may reuse it (FutureSubmitter).
func (f *Future) awaitDone() {
	for f.state.Load() != futureDone {
		runtime.Gosched()
	}
}

// closedChan is returned by Done for futures that completed before anyone
// asked for a channel. It is closed in init and never written again.
var closedChan = make(chan struct{})

func init() { close(closedChan) }

// Done returns a channel that is closed when the future completes.
func (f *Future) Done() <-chan struct{} {
	if f.state.Load() == futureDone {
		return closedChan
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.state.Load(); s >= futureSealed {
		f.awaitDone()
		return closedChan
	}
	if f.done == nil {
		f.done = make(chan struct{})
	}
	return f.done
}

// Wait waits for the call and returns its result and error. The context
// bounds only the wait: if ctx ends first, Wait returns ctx's error and the
// call goes on (cancel the context given to Submit to cancel the call).
func (f *Future) Wait(ctx context.Context) (any, error) {
	if f.state.Load() != futureDone {
		select {
		case <-f.Done():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.value, f.err
}

// Result returns the result and error of a completed future, and false
// while the future is still pending.
func (f *Future) Result() (value any, err error, ok bool) {
	if f.state.Load() != futureDone {
		return nil, nil, false
	}
	return f.value, f.err, true
}

// Worker names where the call ran (a worker slot, a process, a remote
// worker), for reports and timelines. It is valid once the future is done
// and may be empty.
func (f *Future) Worker() string {
	if f.state.Load() != futureDone {
		return ""
	}
	return f.worker
}

// Deliveries is how many times the call was delivered to a worker before
// it was answered, for executors that can deliver a call again: 1 for a
// call run once, 2 or more for a cluster call taken over from a worker
// that died, 0 where the executor does not count deliveries (every
// in-process executor, and a call answered without a delivery, such as
// one cancelled while queued). It is valid once the future is done.
func (f *Future) Deliveries() int {
	if f.state.Load() != futureDone {
		return 0
	}
	return int(f.deliveries)
}

// Started is when the executor started running the call (after any time
// queued), for calls submitted with a Call.Trace; executors that read the
// clock at the start anyway may report it for other calls too. It is the
// zero time while the future is pending, for a call that never started
// (cancelled while queued, refused) and where the executor does not know
// (executor/cluster without a reply from the worker).
func (f *Future) Started() time.Time {
	if f.state.Load() != futureDone || f.started == 0 {
		return time.Time{}
	}
	return epoch.Add(f.started - 1)
}

// OnDone arranges for fn to run once the future completes: at once on the
// calling goroutine if it already has, otherwise on the goroutine that
// completes it. fn must be quick and must not block; it is how a scheduler
// learns of thousands of completions without a goroutine per future.
func (f *Future) OnDone(fn func()) {
	if f.state.Load() != futureDone {
		f.mu.Lock()
		if f.state.Load() < futureSealed {
			if f.first == nil {
				f.first = fn
			} else {
				f.more = append(f.more, fn)
			}
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		f.awaitDone()
	}
	fn()
}

// Promise is the executor's side of a Future: the only way to complete it.
// Executors hand the Future to the caller and keep the Promise.
type Promise struct{ f *Future }

// NewPromise returns a pending future's promise.
func NewPromise() Promise { return Promise{f: &Future{}} }

// Completed returns a future that is already complete.
func Completed(value any, err error) *Future {
	f := &Future{value: value, err: err}
	f.state.Store(futureDone)
	return f
}

// Future returns the future this promise completes.
func (p Promise) Future() *Future { return p.f }

// SetWorker records where the call runs. Call it before Complete, from the
// goroutine that completes the future or one ordered before it.
func (p Promise) SetWorker(worker string) { p.f.worker = worker }

// SetDeliveries records how many times the call was delivered (see
// Future.Deliveries). Call it before Complete, as SetWorker.
// A count above math.MaxInt32 is recorded as math.MaxInt32.
func (p Promise) SetDeliveries(n int) { p.f.deliveries = int32(min(n, math.MaxInt32)) }

// SetStarted records when the call started running (see Future.Started).
// Call it before Complete, as SetWorker.
// The zero time records nothing.
func (p Promise) SetStarted(t time.Time) {
	if !t.IsZero() {
		p.f.started = t.Sub(epoch) + 1
	}
}

// Complete completes the future with value and err and reports whether this
// call did it. Only the first Complete counts: a late result of a call that
// already timed out is dropped, which is how a soft executor keeps an
// abandoned call from changing the answer its caller already has.
func (p Promise) Complete(value any, err error) bool {
	f := p.f
	if !f.state.CompareAndSwap(futurePending, futureCompleting) {
		return false
	}
	f.value, f.err = value, err
	f.mu.Lock()
	done, first, more := f.done, f.first, f.more
	f.first, f.more = nil, nil
	f.state.Store(futureSealed)
	f.mu.Unlock()
	// The last touch of f: from here its owner may reuse it (see
	// FutureSubmitter), so the channel and callbacks are locals.
	f.state.Store(futureDone)
	if done != nil {
		close(done)
	}
	if first != nil {
		first()
	}
	for _, fn := range more {
		fn()
	}
	return true
}

// Pending reports whether the future has not been completed yet.
func (p Promise) Pending() bool { return p.f.state.Load() == futurePending }
