package flow

import (
	"github.com/flowline-go/flowline/internal/stack"
	"github.com/flowline-go/flowline/task"
)

// runner returns a task runner for a new task run, reusing one of a task
// run that has ended (see finish). A run that may make attempts (attempts
// set) records its first one in a slot of a slab of attempt records, made
// for up to 256 task runs at a time, so that a task run costs no
// allocation of its own for its runner or its first attempt. It sets
// opts.Attempts for that; opts is taken by pointer, as the call is in
// launch, to spare a copy of it per task.
func (r *run) runner(spec task.Spec, in any, opts *task.RunOptions, attempts bool) *task.Runner {
	if attempts {
		if len(r.attempts) == 0 {
			r.attempts = make([]task.Attempt, min(max(len(r.units)-r.made, 1), 256))
		}
		opts.Attempts = r.attempts[:0:1]
		r.attempts = r.attempts[1:]
		r.made++
	}
	if k := len(r.runners); k > 0 {
		rn := r.runners[k-1]
		r.runners = r.runners[:k-1]
		rn.Reset(spec, in, *opts)
		return rn
	}
	return task.NewRunner(spec, in, *opts)
}

// free makes a waiter whose attempt's answer has been read free again.
func (r *run) free(w *waiter) {
	w.fut = nil
	w.own.Reset()
	r.waiters = append(r.waiters, w)
}

// dispatch handles the completion of w's attempt. On a run in memory on an
// executor with futures the run owns (executor.FutureSubmitter: local,
// pool), when the loop sleeps, it handles it at once on the goroutine that
// completed the call (a pool worker), and submits the units it makes ready
// from there, so that a task's successors are handed to the executor
// without a hop to the run's loop and back. Otherwise (the loop or another
// completion drives the run, or the run is durable, whose recording stays
// on the loop) it posts the completion to the loop. Nobody ever waits for
// the run's scheduler: a goroutine that finds it driven posts, and the
// driver handles what was posted before it lets go, and wakes the loop
// when the run has ended or its context has. SubmitFuture never waits for room, so a
// worker never blocks here on its own executor's queue.
func (r *run) dispatch(w *waiter) {
	if !r.inline {
		r.q.post(event{w: w})
		return
	}
	if !r.driving.CompareAndSwap(false, true) {
		// The driver takes it before it lets go; if it let go before
		// seeing it, the loop does.
		r.q.postQuiet(event{w: w})
		if !r.driving.Load() {
			r.q.wake()
		}
		return
	}
	// A pool starts a worker goroutine for each of its busy periods,
	// with a small stack: grown deep in the scheduler instead, frame by
	// frame, each doubling copied some 30 frames (2026-12-02: copystack
	// was 10.9% of the CPU of a 32x32 lattice on a pool of 2).
	stack.Grow()
	r.handle(event{w: w})
	for {
		if r.q.n.Load() > 0 {
			r.batch = r.q.take(r.batch)
			for _, e := range r.batch {
				r.handle(e)
			}
			clear(r.batch)
		}
		r.drain()
		if len(r.parked) > 0 {
			r.unpark()
		}
		end := r.open == 0
		r.driving.Store(false)
		if end || r.ctx.Err() != nil {
			r.q.wake()
			return
		}
		if r.q.n.Load() == 0 || !r.driving.CompareAndSwap(false, true) {
			return
		}
	}
}
