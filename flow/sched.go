package flow

import "github.com/flowline-go/flowline/task"

// runner returns a task runner for a new task run, reusing one of a task
// run that has ended (see finish). A run that may make attempts (attempts
// set) records its first one in a slot of a slab of attempt records, made
// for up to 256 task runs at a time, so that a task run costs no
// allocation of its own for its runner or its first attempt.
func (r *run) runner(spec task.Spec, in any, opts task.RunOptions, attempts bool) *task.Runner {
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
		rn.Reset(spec, in, opts)
		return rn
	}
	return task.NewRunner(spec, in, opts)
}

// free makes a waiter whose attempt's answer has been read free again.
func (r *run) free(w *waiter) {
	w.fut = nil
	w.own.Reset()
	r.waiters = append(r.waiters, w)
}
