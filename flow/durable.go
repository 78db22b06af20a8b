package flow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// Hash returns the flow's structural hash: a SHA-256, in hex, of its name,
// its parameters (names, types, required or not) and its nodes (names,
// task names, input and output types, mapped or not, triggers, skip
// handling, edges). A run recorded in a store keeps it, and a resume
// refuses a flow whose hash differs (store.ErrFlowChanged). Options such
// as limits and retries, and the tasks' code, are not part of it.
func (f *Flow) Hash() string {
	f.hashOnce.Do(func() {
		h := sha256.New()
		w := func(parts ...string) {
			for _, p := range parts {
				var n [8]byte
				binary.BigEndian.PutUint64(n[:], uint64(len(p)))
				h.Write(n[:])
				h.Write([]byte(p))
			}
		}
		w("flowline/flow/v1", f.name)
		for _, p := range f.params {
			w("param", p.name, typeName(p.typ), strconv.FormatBool(p.required))
		}
		for i := range f.nodes {
			nd := &f.nodes[i]
			hd := nd.spec.Handler()
			w("node", nd.name, hd.Name(), typeName(hd.InputType()), typeName(hd.OutputType()),
				strconv.Itoa(int(nd.kind)), nd.trigger.String(), strconv.FormatBool(nd.runOnSkip))
			for k := f.upAt[i]; k < f.upAt[i+1]; k++ {
				w("up", strconv.Itoa(int(f.up[k])), strconv.FormatBool(f.upData[k]))
			}
		}
		f.hash = hex.EncodeToString(h.Sum(nil))
	})
	return f.hash
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "<nil>"
	}
	return t.PkgPath() + "." + t.String()
}

// StoreError is a durable run that stopped because its store failed: a
// write that could not be made durable (after the store's own bounded
// retries), or the run's lease lost to another owner. The run's recorded
// state is what was durable before; resume it once the store is back. It
// unwraps to the store's error (store.ErrUnavailable, store.ErrLeaseHeld,
// ...).
type StoreError struct {
	Flow  string
	RunID string
	Err   error
}

// Error names the run and the store's error.
func (e *StoreError) Error() string {
	return fmt.Sprintf("flow %q: run %s stopped: its store failed: %v", e.Flow, e.RunID, e.Err)
}

// Unwrap returns the store's error.
func (e *StoreError) Unwrap() error { return e.Err }

// ErrNotRestartable is returned by Restart for a run that has not ended,
// or that ended Success or Skipped.
var ErrNotRestartable = errors.New("flow: run is not restartable")

// ErrParamsChanged is returned by Run for the id of a recorded run when
// opts.Args differ from the run's recorded parameters.
var ErrParamsChanged = errors.New("flow: arguments differ from the recorded run's")

// resumeMode says which recorded task runs a run keeps.
type resumeMode uint8

const (
	freshRun   resumeMode = iota
	resumeRun             // keep every final task run
	restartRun            // keep only successful ones
	replayRun             // keep all; the run is finished: run nothing
)

// prior is a task run recorded before this process drove the run.
type prior struct {
	keep     bool        // restore rec instead of running the task
	rec      task.Result // for keep
	attempts []task.Attempt
}

// durable is a run's link to its store: the recorder that commits the
// run's writes in batches (group commit), the lease heartbeat, and cache
// lookups, each on a goroutine that the run waits for before it returns.
type durable struct {
	st      store.Store
	runID   string
	owner   string
	ttl     time.Duration
	mode    resumeMode
	prior   map[string]*prior
	replay  bool             // an ended run made again from its record: no writes
	keys    map[int32]keyRef // units' cache keys (loop only)
	lastSeq int64            // loop only
	// reservations by mapped node (record_reserve.go), loop only: asked
	// for, and durable
	asked, resv map[int32]int

	mu      sync.Mutex
	pending store.Batch
	units   []int32 // settled once pending is durable
	started []int32 // submitted once pending is durable
	claims  map[string]bool
	wake    chan struct{}
	quit    chan struct{}
	halt    chan struct{} // closed when the run stops: lookups give up
	halted  bool
	wg      sync.WaitGroup
	cancel  context.CancelCauseFunc

	// Reservations in pending, and the reserved starts in pending (their
	// calls submitted before the start records are durable): reported
	// back once durable (record_reserve.go). Under mu.
	resAsks   []resAsk
	resStarts int

	poll      time.Duration      // cancel requests: how often to look; <= 0 never (requests.go)
	cancelNow bool               // a cancel request was pending when the run was read
	unwatch   context.CancelFunc // stops the watcher's store reads
	over      func() bool        // whether the run was handed over (handover.go)
}

// keyRef is a unit's cache key, and whether the unit holds its claim.
type keyRef struct {
	key     string
	claimed bool
}

// recorded is the recorder's report to the loop: units whose final
// records are durable, or the store's failure.
type recorded struct {
	units     []int32
	started   []int32
	res       []resAsk // reservations now durable
	resStarts int      // reserved starts now durable
	err       error
}

// lookup is a cache lookup's answer.
type lookup struct {
	unit    int32
	key     string
	hit     bool
	value   any
	claimed bool
	err     error
}

func defaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// start begins the recorder and the heartbeat.
func (d *durable) start(ctx context.Context, post func(event)) {
	d.wake = make(chan struct{}, 1)
	d.quit = make(chan struct{})
	d.halt = make(chan struct{})
	d.keys = map[int32]keyRef{}
	d.claims = map[string]bool{}
	d.pending.RunID, d.pending.Owner = d.runID, d.owner
	wctx := context.WithoutCancel(ctx)
	d.over = func() bool { return handedOver(ctx) }
	d.wg.Go(func() { d.record(wctx, post) })
	d.wg.Go(func() { d.heartbeat(wctx, post) })
	d.startWatch(wctx)
}

// record commits what the loop queued, one batch per commit: everything
// queued while the previous commit ran goes in the next (group commit).
func (d *durable) record(ctx context.Context, post func(event)) {
	b := &store.Batch{RunID: d.runID, Owner: d.owner}
	var failed error
	for {
		select {
		case <-d.wake:
		case <-d.quit:
			return
		}
		d.mu.Lock()
		d.pending, *b = *b, d.pending
		units, started, res, resStarts := d.units, d.started, d.resAsks, d.resStarts
		d.units, d.started, d.resAsks, d.resStarts = nil, nil, nil, 0
		d.mu.Unlock()
		if b.Empty() && len(units) == 0 && len(started) == 0 && resStarts == 0 {
			continue
		}
		// After a failure nothing more is written: what the run records
		// then is the failure's consequence (task runs cancelled because
		// the store failed), not an outcome a resume should keep. The
		// record stays as it was when the store failed, as after a crash.
		// A run handed over writes nothing more either (handover.go).
		err := failed
		if err == nil && !d.over() {
			err = d.st.Apply(ctx, b)
			failed = err
		}
		b.Reset()
		if err != nil || len(units) > 0 || len(started) > 0 || len(res) > 0 || resStarts > 0 {
			post(event{rec: &recorded{units: units, started: started, res: res, resStarts: resStarts, err: err}})
		}
	}
}

// heartbeat renews the run's lease and the cache keys it claimed every
// third of the lease's TTL.
func (d *durable) heartbeat(ctx context.Context, post func(event)) {
	t := time.NewTicker(d.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-d.quit:
			return
		case <-t.C:
		}
		if _, err := d.st.Acquire(ctx, d.runID, d.owner, d.ttl); err != nil {
			post(event{rec: &recorded{err: err}})
			return
		}
		d.mu.Lock()
		keys := make([]string, 0, len(d.claims))
		for k := range d.claims {
			keys = append(keys, k)
		}
		d.mu.Unlock()
		for _, k := range keys {
			_, _, _ = d.st.Claim(ctx, k, d.owner, d.ttl) // a lost claim costs a duplicate computation, no more
		}
	}
}

// stopAll stops the goroutines and waits for them.
func (d *durable) stopAll() {
	d.stopLookups()
	if d.unwatch != nil {
		d.unwatch()
	}
	close(d.quit)
	d.wg.Wait()
}

func (d *durable) stopLookups() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.halted {
		d.halted = true
		close(d.halt)
	}
}

func (d *durable) seq() int64 {
	s := time.Now().UnixNano()
	if s <= d.lastSeq {
		s = d.lastSeq + 1
	}
	d.lastSeq = s
	return s
}

func errParts(err error) (class, msg string) {
	if err == nil {
		return "", ""
	}
	return string(executor.ClassOf(err)), err.Error()
}

func errOf(label, class, msg string) error {
	if class == "" && msg == "" {
		return nil
	}
	return &executor.RemoteError{Task: label, Class: executor.Class(class), Message: msg}
}

// change queues a state change, and an attempt's start when it is one.
func (d *durable) change(c task.Change) {
	if d.replay {
		return
	}
	class, msg := errParts(c.Err)
	label := c.Task
	d.mu.Lock()
	if c.To == task.Waiting {
		msg = c.Note // which limit, key and position
	}
	d.pending.Changes = append(d.pending.Changes, store.Change{Seq: d.seq(), Label: label, Attempt: c.Attempt,
		From: c.From.String(), To: c.To.String(), ErrClass: class, ErrMessage: msg, Time: c.Time})
	if c.To == task.Waiting && c.From == task.Pending {
		d.pending.TaskRuns = append(d.pending.TaskRuns, store.TaskRun{Label: label, State: "Waiting", Attempts: c.Attempt})
	}
	if c.To == task.Running && c.Attempt > 0 {
		start, first := c.Time, c.Time
		if p := d.prior[label]; p != nil && len(p.attempts) > 0 {
			first = p.attempts[0].Start
			if last := p.attempts[len(p.attempts)-1]; last.N == c.Attempt {
				start = last.Start // a rejoined attempt keeps its recorded start
			}
		}
		d.pending.Attempts = append(d.pending.Attempts, store.Attempt{Label: label, N: c.Attempt, State: "Running", Start: start})
		d.pending.TaskRuns = append(d.pending.TaskRuns, store.TaskRun{Label: label, State: "Running", Attempts: c.Attempt, Start: first})
	}
	d.mu.Unlock()
	d.signal()
}

// await makes unit i's attempt wait until its start, queued by change,
// is durable.
func (d *durable) await(i int32) {
	d.mu.Lock()
	d.started = append(d.started, i)
	d.mu.Unlock()
	d.signal()
}

func (d *durable) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// final queues unit i's final record; the unit settles once it is
// durable. A result that cannot be encoded fails the task run: a run
// never goes on with a result it did not record.
func (d *durable) final(r *run, i int32, nd *node) {
	rec := &r.recs[i]
	var value []byte
	if rec.State.HasValue() {
		b, err := nd.spec.Handler().EncodeOutput(rec.Value)
		if err != nil {
			rec.State, rec.Value = task.Failed, nil
			rec.Err = fmt.Errorf("flow: task %q: its result cannot be recorded: %w", rec.Task, err)
		} else {
			value = b
		}
	}
	class, msg := errParts(rec.Err)
	tr := store.TaskRun{Label: rec.Task, State: rec.State.String(), Value: value, ErrClass: class, ErrMessage: msg,
		Attempts: len(rec.Attempts), Start: rec.Start, End: rec.End}
	ref, ok := d.keys[i]
	key, claimed := ref.key, ref.claimed
	if ok {
		delete(d.keys, i)
		tr.CacheKey = key
	}
	d.mu.Lock()
	d.pending.TaskRuns = append(d.pending.TaskRuns, tr)
	for _, a := range rec.Attempts {
		ac, am := errParts(a.Err)
		state := "Retrying"
		if a.N == rec.Attempts[len(rec.Attempts)-1].N {
			state = rec.State.String()
		}
		d.pending.Attempts = append(d.pending.Attempts, store.Attempt{Label: rec.Task, N: a.N, State: state,
			Start: a.Start, End: a.End, ErrClass: ac, ErrMessage: am, Worker: a.Worker})
	}
	if claimed {
		delete(d.claims, key)
		if rec.State == task.Success {
			e := store.CacheEntry{Key: key, Value: value, Created: rec.End}
			e.Expires = rec.End.Add(nd.spec.Options().CacheFor)
			d.pending.Cache = append(d.pending.Cache, e)
		} else {
			d.pending.Unclaim = append(d.pending.Unclaim, key)
		}
	}
	d.units = append(d.units, i)
	d.mu.Unlock()
	d.signal()
}

// mappedFinal queues a mapped node's record, for reports; a resume makes
// it again from its children, so nothing waits for it.
func (d *durable) mappedFinal(rec *TaskRun) {
	if d.replay {
		return
	}
	class, msg := errParts(rec.Err)
	d.mu.Lock()
	d.pending.TaskRuns = append(d.pending.TaskRuns, store.TaskRun{Label: rec.Task, State: rec.State.String(),
		ErrClass: class, ErrMessage: msg, Start: rec.Start, End: rec.End})
	d.mu.Unlock()
	d.signal()
}

// cacheKey returns the cache key of nd's input in, or "" for none.
func cacheKey(nd *node, in any) (string, error) {
	opts := nd.spec.Options()
	b, err := nd.spec.Handler().EncodeInput(in)
	if err != nil {
		return "", err
	}
	if opts.CacheKey != nil {
		return opts.CacheKey(b), nil
	}
	sum := sha256.Sum256(b)
	return nd.spec.Name() + "/" + opts.CacheVersion + "/" + hex.EncodeToString(sum[:]), nil
}

// look looks key up on a goroutine of its own and posts the answer: a
// hit (decoded), a claim, or an error. While another owner holds the
// key's claim it asks again, with backoff, until the run stops.
func (d *durable) look(ctx context.Context, i int32, key string, h *executor.Handler, post func(event)) {
	d.wg.Go(func() {
		delay := 10 * time.Millisecond
		for {
			e, hit, err := d.st.Claim(ctx, key, d.owner, d.ttl)
			switch {
			case err == nil && hit:
				v, derr := h.DecodeOutput(e.Value)
				if derr == nil {
					post(event{look: &lookup{unit: i, key: key, hit: true, value: v}})
					return
				}
				// An entry that no longer decodes is dropped and computed again.
				if _, err = d.st.Invalidate(ctx, key); err == nil {
					continue
				}
			case err == nil:
				d.mu.Lock()
				d.claims[key] = true
				d.mu.Unlock()
				post(event{look: &lookup{unit: i, key: key, claimed: true}})
				return
			case errors.Is(err, store.ErrLeaseHeld):
				t := time.NewTimer(delay)
				select {
				case <-t.C:
					delay = min(2*delay, 500*time.Millisecond)
					continue
				case <-d.halt:
					t.Stop()
					err = context.Canceled
				}
			}
			post(event{look: &lookup{unit: i, key: key, err: err}})
			return
		}
	})
}

// encodeParams encodes the run's parameter values, by name, as JSON.
func (f *Flow) encodeParams(vals []any) ([]byte, error) {
	m := make(map[string]json.RawMessage, len(vals))
	for i, v := range vals {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, &ParamError{Flow: f.name, Param: f.params[i].name, Err: fmt.Errorf("flow: a durable run records its parameters as JSON: %w", err)}
		}
		m[f.params[i].name] = b
	}
	return json.Marshal(m)
}

// decodeParams decodes recorded parameters.
func (f *Flow) decodeParams(runID string, data []byte) ([]any, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &store.CorruptError{What: "parameters of run " + runID, Err: err}
	}
	vals := make([]any, len(f.params))
	for i, p := range f.params {
		raw, ok := m[p.name]
		if !ok {
			return nil, &store.CorruptError{What: "parameters of run " + runID, Err: fmt.Errorf("no value for %q", p.name)}
		}
		pv := reflect.New(p.typ)
		if err := json.Unmarshal(raw, pv.Interface()); err != nil {
			return nil, &store.CorruptError{What: fmt.Sprintf("parameter %q of run %s", p.name, runID), Err: err}
		}
		vals[i] = pv.Elem().Interface()
	}
	return vals, nil
}

// loadPrior reads a run's task runs and attempts and decides, per task
// run, whether it is kept (restored with its recorded result) or run
// again (its attempts kept, numbering continuing). Every kept result is
// decoded now, so a result that no longer decodes fails the resume before
// anything runs (a *store.CorruptError).
func (f *Flow) loadPrior(ctx context.Context, st store.Store, runID string, mode resumeMode) (map[string]*prior, error) {
	trs, err := st.TaskRuns(ctx, runID)
	if err != nil {
		return nil, err
	}
	as, err := st.Attempts(ctx, runID)
	if err != nil {
		return nil, err
	}
	attempts := map[string][]task.Attempt{}
	for _, a := range as {
		attempts[a.Label] = append(attempts[a.Label], task.Attempt{N: a.N, Start: a.Start, End: a.End,
			Err: errOf(a.Label, a.ErrClass, a.ErrMessage), Worker: a.Worker})
	}
	out := make(map[string]*prior, len(trs))
	for _, tr := range trs {
		name := tr.Label
		child := false
		if k := strings.LastIndexByte(name, '['); k > 0 && strings.HasSuffix(name, "]") {
			name, child = name[:k], true
		}
		id, ok := f.lookup(name)
		if !ok {
			return nil, &store.CorruptError{What: "task runs of run " + runID, Err: fmt.Errorf("no node %q in flow %q", tr.Label, f.name)}
		}
		nd := &f.nodes[id]
		if nd.kind == mappedNode && !child {
			continue // made again from its children
		}
		var state task.State
		if err := state.UnmarshalText([]byte(tr.State)); err != nil {
			return nil, &store.CorruptError{What: "task run " + tr.Label + " of run " + runID, Err: err}
		}
		p := &prior{attempts: attempts[tr.Label]}
		switch mode {
		case resumeRun, replayRun:
			p.keep = state.Final()
		case restartRun:
			p.keep = state.Successful()
		}
		if !p.keep {
			out[tr.Label] = p
			continue
		}
		p.rec = task.Result{Task: tr.Label, RunID: runID + "/" + tr.Label, State: state,
			Err: errOf(tr.Label, tr.ErrClass, tr.ErrMessage), Attempts: p.attempts, Start: tr.Start, End: tr.End}
		if state.HasValue() {
			v, err := nd.spec.Handler().DecodeOutput(tr.Value)
			if err != nil {
				return nil, &store.CorruptError{What: "recorded result of task " + tr.Label + " in run " + runID, Err: err}
			}
			p.rec.Value = v
		}
		out[tr.Label] = p
	}
	if err := f.priorFromReservations(ctx, st, runID, trs, out); err != nil {
		return nil, err
	}
	return out, nil
}

// refuse is the executor of a replay: a finished run runs nothing, so a
// task run it would have to run means the record is incomplete.
type refuse struct{ runID string }

func (x refuse) Submit(_ context.Context, call executor.Call) (*executor.Future, error) {
	return nil, &store.CorruptError{What: "run " + x.runID, Err: fmt.Errorf("it ended, but has no record of task %s", call.Name())}
}

func (refuse) Enforcement() executor.Enforcement { return executor.Soft }
