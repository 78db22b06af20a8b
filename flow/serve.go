package flow

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/store"
)

// ServeOptions configure Serve. The zero value (with a Store) is ready to
// use.
type ServeOptions struct {
	// RunOptions apply to every run Serve drives: Store (required),
	// Owner, LeaseTTL, CancelPoll, Logger, OnState. Args and RunID are
	// ignored: a resumed or restarted run has its own. Owner names this
	// Serve in the store's leases and must differ between processes
	// (empty means hostname/pid/random, which does).
	RunOptions

	// PollInterval is how often Serve looks in the store for runs to
	// resume and retry requests to perform. Zero means every second.
	PollInterval time.Duration

	// OnResult, when set, is called once for each run Serve drove, when
	// it ends, with Resume's or Restart's result and error; and for each
	// run Serve could not start (a changed flow, a corrupt record), with
	// a nil Result and the error. It is called on the run's own
	// goroutine, concurrently for different runs; Serve waits for it
	// before it returns. Nil means none (errors are logged).
	OnResult func(*Result, error)
}

// Serve is a service's loop over a shared store: until ctx ends it looks,
// at once and then every PollInterval, for
//
//   - runs of these flows (matched by name) that have not ended and whose
//     owner's lease expired, and resumes each (as ResumeExpired does);
//   - retry requests (store.Store.RequestRetry) for runs of these flows,
//     and performs each (as Restart does).
//
// Every run it starts runs on a goroutine of its own, concurrently with
// the others and with the next looks. Several processes may run Serve on
// one store: a run's lease decides which takes it, so an expired run is
// resumed by one of them and a retry request is performed once. A run
// that cannot be started (a changed flow, a corrupt record, a run not
// restartable) is reported to OnResult and the logger once and not tried
// again by this Serve; one that failed because the store was unavailable
// is tried again at the next look. A failed look is logged and made
// again at the next tick.
//
// When ctx ends, Serve stops looking and hands the runs it drives over
// (see ErrHandedOver): each stops without recording its end, and its
// lease is released, so that the Serve of another process (or of this
// service's next instance) resumes it at its next look, as after a crash;
// the task runs that were in flight run again there. Serve returns ctx's
// error once they have all stopped and OnResult has returned for each
// (with a Cancelled Result whose Err matches ErrHandedOver).
//
// Serve returns an error at once, without looking, for two flows with one
// name. It panics if ex, opts.Store or a flow is nil.
func Serve(ctx context.Context, ex executor.TimeoutHandler, flows []*Flow, opts ServeOptions) error {
	if ex == nil {
		panic("flow: Serve with a nil executor")
	}
	if opts.Store == nil {
		panic("flow: Serve without a Store")
	}
	byName := make(map[string]*Flow, len(flows))
	for _, f := range flows {
		if f == nil {
			panic("flow: Serve with a nil flow")
		}
		if byName[f.name] != nil && byName[f.name] != f {
			return fmt.Errorf("flow: Serve with two flows named %q", f.name)
		}
		byName[f.name] = f
	}
	s := &server{ex: ex, flows: byName, opts: opts, active: map[string]bool{}, given: map[string]bool{}}
	s.opts.Owner, s.ttl = opts.lease()
	s.opts.Args, s.opts.RunID = nil, ""
	s.log = opts.Logger
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.log = s.log.Named("serve")
	interval := opts.PollInterval
	if interval <= 0 {
		interval = time.Second
	}
	defer s.wg.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.look(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// server is one Serve's state.
type server struct {
	ex    executor.TimeoutHandler
	flows map[string]*Flow
	opts  ServeOptions
	ttl   time.Duration
	log   hclog.Logger
	wg    sync.WaitGroup

	mu     sync.Mutex
	active map[string]bool // runs this Serve drives now
	given  map[string]bool // runs this Serve gave up on
}

// look finds the runs to resume and the retries to perform, and starts
// each.
func (s *server) look(ctx context.Context) {
	st := s.opts.Store
	expired, err := st.Runs(ctx, store.RunFilter{Unfinished: true, LeaseExpiredBy: time.Now()})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("looking for runs to resume failed", "error", err)
		}
		return
	}
	for _, rec := range expired {
		f := s.flows[rec.Flow]
		if f == nil || !s.claim(rec.ID) {
			continue
		}
		rec, ok := s.take(ctx, rec.ID, func(r *store.Run) bool { return !r.Finished() })
		if !ok {
			s.unclaim(rec.ID)
			continue
		}
		s.start(ctx, f, rec, resumeRun)
	}
	retries, err := st.Runs(ctx, store.RunFilter{RetryRequested: true})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("looking for retry requests failed", "error", err)
		}
		return
	}
	for _, rec := range retries {
		f := s.flows[rec.Flow]
		if f == nil || !s.claim(rec.ID) {
			continue
		}
		rec, ok := s.take(ctx, rec.ID, func(r *store.Run) bool { return r.Finished() && !r.RetryRequested.IsZero() })
		if !ok {
			s.unclaim(rec.ID)
			continue
		}
		s.start(ctx, f, rec, restartRun)
	}
}

// take takes run id's lease and reads the run again under it: the run is
// this Serve's to drive if it still wants it. What the look listed may
// have been done meanwhile by another process, which then holds the lease
// or has changed the run: a resumed run has ended; a performed retry has
// its request cleared (the restart records the run as running again). So
// an expired run is resumed once and a retry request performed once.
func (s *server) take(ctx context.Context, id string, wants func(*store.Run) bool) (store.Run, bool) {
	st := s.opts.Store
	if _, err := st.Acquire(ctx, id, s.opts.Owner, s.ttl); err != nil {
		if !errors.Is(err, store.ErrLeaseHeld) && ctx.Err() == nil {
			s.log.Warn("taking a run's lease failed", "run", id, "error", err)
		}
		return store.Run{ID: id}, false
	}
	rec, err := st.Run(ctx, id)
	if err != nil || !wants(&rec) {
		_ = st.Release(context.WithoutCancel(ctx), id, s.opts.Owner)
		return store.Run{ID: id}, false
	}
	return rec, true
}

// claim marks run id as driven by this Serve, unless it already is or
// was given up.
func (s *server) claim(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[id] || s.given[id] {
		return false
	}
	s.active[id] = true
	return true
}

func (s *server) unclaim(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.active, id)
}

// start drives run rec on a goroutine of its own.
func (s *server) start(ctx context.Context, f *Flow, rec store.Run, mode resumeMode) {
	s.wg.Go(func() {
		rctx, stop := handOver(ctx)
		res, err := f.resume(rctx, s.ex, rec, s.opts.RunOptions, mode)
		stop()
		if res == nil {
			// Not started: give back the lease take took.
			_ = s.opts.Store.Release(context.WithoutCancel(ctx), rec.ID, s.opts.Owner)
		}
		s.mu.Lock()
		delete(s.active, rec.ID)
		lost := res == nil && (errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil)
		if res == nil && !lost {
			s.given[rec.ID] = true
		}
		s.mu.Unlock()
		if lost {
			return // another process took it first, or try again later
		}
		action := "resume"
		if mode == restartRun {
			action = "retry"
		}
		if res == nil {
			s.log.Error("run not started", "action", action, "run", rec.ID, "flow", f.name, "error", err)
		} else {
			s.log.Debug("run ended", "action", action, "run", rec.ID, "flow", f.name, "state", res.State)
		}
		if s.opts.OnResult != nil {
			s.opts.OnResult(res, err)
		}
	})
}
