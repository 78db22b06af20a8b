package flow

import (
	"fmt"
	"strconv"

	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/task"
)

// checkLimits refuses, before a run, a task that names a limit set does
// not define, or names limits when set is nil.
func (f *Flow) checkLimits(set *limit.Set) error {
	for _, i := range f.limited {
		nd := &f.nodes[i]
		if err := set.Check(nd.name, nd.limits); err != nil {
			return err
		}
	}
	return nil
}

// limited is the end of a unit's wait for its limits.
type limited struct {
	hold *limit.Hold
	err  error
}

// next begins unit i's next attempt: at once for a task without limits;
// otherwise once its limits are taken, waiting for them (phase limiting,
// task state Waiting) when they cannot be taken at once.
func (r *run) next(i int32) {
	u := &r.units[i]
	if u.keys == nil {
		r.launch(i)
		return
	}
	_, runID := r.labelOf(i)
	holder := runID + "#" + strconv.Itoa(u.runner.Attempt()+1)
	u.phase = limiting
	h, w, err := r.opts.Limits.Acquire(r.ctx, holder, u.keys, func(h *limit.Hold, err error) {
		r.q.post(event{unit: i, lim: &limited{hold: h, err: err}})
	})
	r.expireClock() // Acquire may have asked a store
	switch {
	case err != nil:
		r.limitFailed(i, err)
	case h != nil:
		u.hold = h
		r.launch(i)
	default:
		u.runner.Wait(w)
	}
}

// limitDone handles the end of unit i's wait.
func (r *run) limitDone(i int32, l *limited) {
	u := &r.units[i]
	if u.phase != limiting {
		l.hold.Release()
		return
	}
	if l.err != nil {
		r.limitFailed(i, l.err)
		return
	}
	if r.stopping {
		l.hold.Release()
		r.cancel(i)
		return
	}
	u.hold = l.hold
	r.launch(i)
}

// limitFailed ends unit i, whose limits could not be taken: Cancelled,
// because the run is stopping (its context ended) or the Set was closed
// under it.
func (r *run) limitFailed(i int32, err error) {
	if r.ctx.Err() != nil {
		r.cancel(i)
		return
	}
	label, _ := r.labelOf(i)
	r.units[i].runner.End(task.Cancelled, fmt.Errorf("flow: task %q: taking its limits: %w", label, err))
	r.finish(i)
}

// labelOf returns unit i's label and task-run id.
func (r *run) labelOf(i int32) (label, runID string) {
	if r.child(i) {
		return r.childIDs(i)
	}
	return r.f.nodes[i].name, r.runID(i)
}
