package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// Resume continues the run id recorded in opts.Store, in this process: its
// task runs that are final in the record are not run again (their
// recorded results feed the tasks downstream), those that were in flight
// get a new attempt (attempt numbers continue after the recorded ones),
// and the rest run as usual. The run's recorded parameters are used;
// opts.Args and opts.RunID are ignored.
//
// Resume fails before anything runs with: store.ErrNotFound for an
// unknown id; a *store.FlowChangedError when f is not the flow the run
// was recorded with (name and Hash); a *store.LeaseError while another
// process holds the run's lease (it expires LeaseTTL after that process
// last renewed it); a *store.CorruptError when a recorded result no
// longer decodes into its task's type. Resuming a run that has ended
// returns its recorded result and runs nothing (as Run does for its id).
// Resume panics if opts.Store is nil.
func (f *Flow) Resume(ctx context.Context, ex executor.TimeoutHandler, id string, opts RunOptions) (*Result, error) {
	if opts.Store == nil {
		panic("flow: Resume without a Store")
	}
	rec, err := opts.Store.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	return f.resume(ctx, ex, rec, opts, resumeRun)
}

// Restart runs again the task runs of the ended run id that did not
// succeed: those that ended Failed, TimedOut, TriggerFailed or Cancelled,
// and those that never ran; successful ones (Success, Cached, Skipped)
// keep their recorded results. Attempt numbers continue; each re-run task
// has its full retry budget. The run is recorded as running again, under
// the same id, and ends with a new final state.
//
// Restart fails like Resume, and with ErrNotRestartable for a run that has
// not ended or that ended Success or Skipped. It panics if opts.Store is
// nil.
func (f *Flow) Restart(ctx context.Context, ex executor.TimeoutHandler, id string, opts RunOptions) (*Result, error) {
	if opts.Store == nil {
		panic("flow: Restart without a Store")
	}
	rec, err := opts.Store.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	return f.resume(ctx, ex, rec, opts, restartRun)
}

// ResumeExpired is the one call for a service's startup: it finds the
// runs in opts.Store that have not ended and whose owner's lease expired
// (their process died), and resumes each one of the given flows (matched
// by name) in turn, returning the results in the store's order. A run
// that another process takes first is left to it; a run of a flow not
// given is left alone. Errors (a changed flow, a corrupt record, a failed
// run) are joined; a run that failed still has its Result. It panics if
// opts.Store is nil.
func ResumeExpired(ctx context.Context, ex executor.TimeoutHandler, flows []*Flow, opts RunOptions) ([]*Result, error) {
	if opts.Store == nil {
		panic("flow: ResumeExpired without a Store")
	}
	byName := make(map[string]*Flow, len(flows))
	for _, f := range flows {
		byName[f.name] = f
	}
	runs, err := opts.Store.Runs(ctx, store.RunFilter{Unfinished: true, LeaseExpiredBy: time.Now()})
	if err != nil {
		return nil, err
	}
	var out []*Result
	var errs []error
	for _, rec := range runs {
		f := byName[rec.Flow]
		if f == nil {
			continue
		}
		res, err := f.resume(ctx, ex, rec, opts, resumeRun)
		if errors.Is(err, store.ErrLeaseHeld) && res == nil {
			continue // another process resumed it first
		}
		if res != nil {
			out = append(out, res)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return out, errors.Join(errs...)
}

func (o *RunOptions) lease() (owner string, ttl time.Duration) {
	owner, ttl = o.Owner, o.LeaseTTL
	if owner == "" {
		owner = defaultOwner()
	}
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return owner, ttl
}

// runDurable starts a recorded run, or, for the id of a recorded run,
// resumes it (or returns its result if it has ended).
func (f *Flow) runDurable(ctx context.Context, ex executor.TimeoutHandler, opts RunOptions) (*Result, error) {
	st := opts.Store
	id := opts.RunID
	if id != "" {
		rec, err := st.Run(ctx, id)
		switch {
		case err == nil:
			if len(opts.Args) > 0 {
				params, err := f.bind(opts.Args)
				if err != nil {
					return nil, err
				}
				enc, err := f.encodeParams(params)
				if err != nil {
					return nil, err
				}
				if !bytes.Equal(enc, rec.Params) {
					return nil, fmt.Errorf("%w: run %s", ErrParamsChanged, id)
				}
			}
			return f.resume(ctx, ex, rec, opts, resumeRun)
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	} else {
		id = newRunID()
	}
	params, err := f.bind(opts.Args)
	if err != nil {
		return nil, err
	}
	enc, err := f.encodeParams(params)
	if err != nil {
		return nil, err
	}
	owner, ttl := opts.lease()
	now := time.Now()
	err = st.CreateRun(ctx, store.Run{ID: id, Flow: f.name, FlowHash: f.Hash(), Params: enc, State: "Running",
		Owner: owner, LeaseExpires: now.Add(ttl), Created: now})
	if err != nil {
		return nil, err
	}
	opts.RunID = id
	return f.execute(ctx, ex, params, opts, &durable{st: st, runID: id, owner: owner, ttl: ttl, poll: opts.cancelPoll()})
}

func (f *Flow) resume(ctx context.Context, ex executor.TimeoutHandler, rec store.Run, opts RunOptions, mode resumeMode) (*Result, error) {
	st := opts.Store
	if rec.Flow != f.name || rec.FlowHash != f.Hash() {
		return nil, &store.FlowChangedError{RunID: rec.ID, Flow: f.name, RecordedFlow: rec.Flow, Hash: f.Hash(), RecordedHash: rec.FlowHash}
	}
	if err := f.checkLimits(opts.Limits); err != nil {
		return nil, err
	}
	params, err := f.decodeParams(rec.ID, rec.Params)
	if err != nil {
		return nil, err
	}
	var state task.State
	if rec.Finished() {
		if err := state.UnmarshalText([]byte(rec.State)); err != nil {
			return nil, &store.CorruptError{What: "state of run " + rec.ID, Err: err}
		}
	}
	switch {
	case mode == resumeRun && rec.Finished():
		mode = replayRun
	case mode == restartRun && (!rec.Finished() || state.Successful()):
		return nil, fmt.Errorf("%w: run %s is %s", ErrNotRestartable, rec.ID, rec.State)
	}
	opts.RunID = rec.ID
	if mode == replayRun {
		prior, err := f.loadPrior(ctx, st, rec.ID, mode)
		if err != nil {
			return nil, err
		}
		res, _ := f.execute(ctx, refuse{rec.ID}, params, opts, &durable{runID: rec.ID, mode: mode, prior: prior, replay: true})
		res.State, res.Start, res.End = state, rec.Created, rec.Ended
		res.Err = nil
		if !state.Successful() {
			res.Err = errOf(f.name, rec.ErrClass, rec.ErrMessage)
			if res.Err == nil {
				res.Err = fmt.Errorf("flow %q: run %s ended %s", f.name, rec.ID, rec.State)
			}
		}
		return res, res.Err
	}
	owner, ttl := opts.lease()
	if _, err := st.Acquire(ctx, rec.ID, owner, ttl); err != nil {
		return nil, err
	}
	// Read the run again under the lease: another resumer may have driven
	// it to its end between our first read and our Acquire.
	now, err := st.Run(ctx, rec.ID)
	if err != nil {
		_ = st.Release(context.WithoutCancel(ctx), rec.ID, owner)
		return nil, err
	}
	if !now.Ended.Equal(rec.Ended) {
		_ = st.Release(context.WithoutCancel(ctx), rec.ID, owner)
		if mode == resumeRun {
			return f.resume(ctx, ex, now, opts, resumeRun) // ended: its recorded result
		}
		return nil, fmt.Errorf("%w: run %s changed while this restart began (now %s)", ErrNotRestartable, rec.ID, now.State)
	}
	prior, err := f.loadPrior(ctx, st, rec.ID, mode)
	if err == nil && mode == restartRun {
		err = st.Apply(ctx, restartBatch(rec.ID, owner, prior))
	}
	if err != nil {
		_ = st.Release(context.WithoutCancel(ctx), rec.ID, owner)
		return nil, err
	}
	return f.execute(ctx, ex, params, opts, &durable{st: st, runID: rec.ID, owner: owner, ttl: ttl, mode: mode, prior: prior,
		poll: opts.cancelPoll(), cancelNow: !rec.CancelRequested.IsZero()})
}

// finishRun records the run's end, with what is still queued, and gives
// the lease up. A run stopped by its store is not recorded as ended: it is
// resumed later.
func (d *durable) finishRun(ctx context.Context, res *Result, storeErr error) {
	wctx := context.WithoutCancel(ctx)
	defer func() { _ = d.st.Release(wctx, d.runID, d.owner) }()
	if storeErr != nil || handedOver(ctx) {
		return
	}
	b := &d.pending
	class, msg := "", ""
	if !res.State.Successful() {
		class, msg = errParts(res.Err)
	}
	b.Run = &store.RunUpdate{State: res.State.String(), ErrClass: class, ErrMessage: msg, Ended: res.End}
	if err := d.st.Apply(wctx, b); err != nil {
		res.Err = errors.Join(res.Err, &StoreError{Flow: res.Flow, RunID: d.runID,
			Err: fmt.Errorf("recording the run's end: %w", err)})
	}
}

// recorded handles the recorder's report: units whose records are
// durable settle; a store failure stops the run.
func (r *run) recorded(e *recorded) {
	if e.err != nil && r.storeErr == nil {
		r.storeErr = &StoreError{Flow: r.f.name, RunID: r.id, Err: e.err}
		r.d.cancel(r.storeErr)
		if !r.stopping {
			r.stop()
		}
	}
	r.reservedDurable(e)
	for _, i := range e.units {
		if r.units[i].phase == recording {
			r.settle(i)
		}
	}
	for _, i := range e.started {
		if r.units[i].phase != starting {
			continue // cancelled meanwhile
		}
		call := r.starts[i]
		delete(r.starts, i)
		r.submit(i, &call)
	}
	if len(r.held) > 0 && !r.stopping {
		r.unhold()
	}
}

// looked handles a cache lookup's answer.
func (r *run) looked(l *lookup) {
	i := l.unit
	u := &r.units[i]
	if u.phase != looking {
		return
	}
	if l.claimed {
		r.d.keys[i] = keyRef{key: l.key, claimed: true}
	}
	switch {
	case l.err != nil || r.stopping:
		if l.err != nil && !errors.Is(l.err, context.Canceled) && r.storeErr == nil {
			r.recorded(&recorded{err: l.err})
		}
		r.cancel(i)
	case l.hit:
		r.d.keys[i] = keyRef{key: l.key}
		u.runner.Cached(l.value)
		r.finish(i)
	default:
		r.next(i)
	}
}
