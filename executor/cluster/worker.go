package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster/internal/envelope"
	"github.com/flowline-go/flowline/internal/wire"
	"github.com/flowline-go/flowline/observe"
)

// WorkerOptions configure a Worker.
type WorkerOptions struct {
	// Connection says which NATS to use: a URL, or a Server in the same
	// process (Executor.Server). One of them is required.
	Connection

	// Setup names the stream, consumer and bucket; it must match the
	// submitters'. Its settings apply to what the worker creates.
	Setup

	// Registry holds the tasks this worker can run, by name. A call of a
	// task that is not in it fails with an *executor.UnknownTaskError.
	// Required.
	Registry *executor.Registry

	// Executor runs the calls: executor/local, executor/pool, or
	// executor/subprocess for hard limits. Its Enforcement should be what
	// the submitters declare. The worker does not shut it down: its owner
	// does, after the worker's Shutdown. Required.
	Executor executor.Executor

	// Concurrency is how many calls the worker runs at once, and so how
	// many it pulls: it asks for a call only when a slot is free. Default
	// runtime.GOMAXPROCS(0).
	Concurrency int

	// Name identifies the worker in logs, in UnknownTaskError.Where and
	// in Future.Worker. Default "<hostname>-<pid>-<random>".
	Name string

	// Heartbeat is how often the worker tells JetStream that a call it
	// holds is still in progress, so that it is not delivered again while
	// it runs. Default a third of the consumer's AckWait.
	Heartbeat time.Duration

	// Logger receives the worker's own messages, named "cluster-worker".
	// Nil means no logging.
	Logger hclog.Logger

	// DrainTimeout is how long Serve lets running calls finish once its
	// context ends, before handing them back. Default 30s. NewWorker
	// ignores it: Shutdown's context says it.
	DrainTimeout time.Duration
}

// WorkerStats are a worker's counters; they only grow.
type WorkerStats struct {
	Received   uint64 // deliveries taken from the stream
	Ran        uint64 // calls given to the executor (counted as it starts them; refusals included)
	Skipped    uint64 // deliveries not run: the call already had a result, was cancelled, or another worker holds it
	HandedBack uint64 // deliveries returned to the stream (Nak) for another worker
}

// Worker serves calls from the stream: it pulls one call per free slot,
// runs it on its executor, heartbeats it while it runs, records its result
// in the bucket (create-if-absent: the first result of a call stands) and
// acknowledges the message. A call delivered again (a consumer leader
// died) is first asked about on "<Prefix>.holds": if another live worker
// holds it, it is left to that one (handed back with a delay of the ack
// wait) instead of run twice. A task that calls runtime.Goexit on a slot's
// goroutine (an executor that runs calls inline, such as executor/local
// without a limit) is answered as an *executor.PanicError matching
// executor.ErrGoexit, and the slot goes on with a new goroutine. It is
// safe for concurrent use. The zero value
// is not usable: call NewWorker, or Serve.
type Worker struct {
	opts   WorkerOptions
	logger hclog.Logger
	name   string
	conn   *conn
	obj    objects
	// kvPrefix + key is the subject of the key's record in the bucket
	// ("$KV.<bucket>.<key>"), for createRecord.
	kvPrefix string
	hb       time.Duration
	slots    []*slot
	pull     *puller

	cancelSub, adviseSub, holdsSub *nats.Subscription

	live      atomic.Int32  // slot goroutines still running
	done      chan struct{} // closed when the last slot goroutine ends
	beatStop  chan struct{}
	beatDone  chan struct{}
	beatKick  chan struct{} // heartbeat every held call now; size 1
	abort     chan struct{} // closed when a Shutdown gave up waiting
	draining  atomic.Bool
	stopPulls context.CancelFunc // ends the slots' pull requests
	drainOnce sync.Once
	abortOnce sync.Once
	closeOnce sync.Once
	lostOnce  sync.Once

	mu         sync.Mutex
	acks       []sentAck            // acknowledgements sent lately, oldest first
	failedAt   time.Time            // when pulls began to fail; zero while they succeed
	cancelled  map[string]time.Time // keys cancelled lately, and when
	advisories []advisory           // exhausted calls for the jobs goroutine
	jobKick    chan struct{}        // wakes the jobs goroutine; size 1
	jobsDone   chan struct{}

	received, ran, skipped, handedBack atomic.Uint64
}

// slot is one unit of the worker's concurrency: while idle it waits for
// the puller to hand it a call (see puller), and runs it. A slot holds at
// most the one message it heartbeats.
type slot struct {
	in chan jetstream.Msg // the puller's hand-over; size 1

	mu         sync.Mutex
	msg        jetstream.Msg // nil when idle
	key        string
	what       string // the call, for ShutdownError
	cancel     context.CancelFunc
	running    bool // the executor has the call (as opposed to recording its result)
	beat       time.Time
	handedBack bool
}

// NewWorker connects, creates the stream, consumer and bucket if they are
// missing, and starts serving. It fails without a Registry, an Executor or
// a connection, or when NATS cannot be reached.
func NewWorker(opts WorkerOptions) (*Worker, error) {
	if opts.Registry == nil {
		return nil, errors.New("executor/cluster: WorkerOptions.Registry is required")
	}
	if opts.Executor == nil {
		return nil, errors.New("executor/cluster: WorkerOptions.Executor is required")
	}
	if err := opts.Setup.setDefaults(); err != nil {
		return nil, err
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	name := opts.Name
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), newID()[:4])
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	w := &Worker{
		opts:      opts,
		logger:    logger.Named("cluster-worker").With("worker", name),
		name:      name,
		done:      make(chan struct{}),
		beatStop:  make(chan struct{}),
		beatDone:  make(chan struct{}),
		beatKick:  make(chan struct{}, 1),
		abort:     make(chan struct{}),
		cancelled: make(map[string]time.Time),
		jobKick:   make(chan struct{}, 1),
		jobsDone:  make(chan struct{}),
	}
	if err := w.start(); err != nil {
		if w.conn != nil {
			w.conn.close(context.Background())
		}
		return nil, err
	}
	w.live.Store(int32(len(w.slots)))
	// The slots' pulls end when Shutdown begins (stopPulls).
	pctx, stopPulls := context.WithCancel(context.Background())
	w.stopPulls = stopPulls
	// Idle from the start: the puller's first request asks for all.
	w.pull.idle = append(w.pull.idle, w.slots...)
	for _, s := range w.slots {
		go w.serve(pctx, s, true)
	}
	go w.pull.run()
	go w.heartbeat()
	go w.jobs()
	w.logger.Info("worker started", "concurrency", len(w.slots), "tasks", len(opts.Registry.Names()))
	return w, nil
}

func (w *Worker) start() error {
	var err error
	if w.conn, err = w.opts.Connection.connect("flowline worker "+w.name, w.logger); err != nil {
		return err
	}
	js, err := jetstream.New(w.conn.nc)
	if err != nil {
		return fmt.Errorf("executor/cluster: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.startTimeout())
	defer cancel()
	if w.obj, err = w.opts.Setup.ensure(ctx, js, w.logger); err != nil {
		return err
	}
	w.kvPrefix = "$KV." + w.opts.Setup.Bucket + "."
	w.hb = w.opts.Heartbeat
	if w.hb <= 0 {
		w.hb = w.obj.consumer.CachedInfo().Config.AckWait / 3
	}
	w.hb = max(w.hb, 10*time.Millisecond)
	if w.cancelSub, err = w.conn.nc.Subscribe(w.opts.Setup.cancelSubject(), w.onCancel); err != nil {
		return fmt.Errorf("executor/cluster: subscribe to cancellations: %w", err)
	}
	if w.adviseSub, err = w.conn.nc.Subscribe(w.opts.Setup.advisorySubject(), w.onAdvisory); err != nil {
		return fmt.Errorf("executor/cluster: subscribe to advisories: %w", err)
	}
	for range w.opts.Concurrency {
		w.slots = append(w.slots, &slot{in: make(chan jetstream.Msg, 1)})
	}
	if w.pull, err = newPuller(w, w.opts.Setup.Stream, w.opts.Setup.Consumer); err != nil {
		return fmt.Errorf("executor/cluster: subscribe to the pull inbox: %w", err)
	}
	// After the slots exist: onHolds reads them.
	if w.holdsSub, err = w.conn.nc.Subscribe(w.opts.Setup.holdsSubject(), w.onHolds); err != nil {
		return fmt.Errorf("executor/cluster: subscribe to holds: %w", err)
	}
	return nil
}

// pullRetryMax bounds the pause between failed pulls (no consumer
// leader during an election, a reconnect): once a new leader is elected,
// a free slot reaches it within that.
const pullRetryMax = 250 * time.Millisecond

// pullWait bounds one pull request of a slot. A request parked at a
// consumer leader that died, or lost in a reconnect, is replaced when it
// ends: so it bounds how long a free slot can sit idle after a failure.
const pullWait = 2 * time.Second

// Name returns the worker's name.
func (w *Worker) Name() string { return w.name }

// Done returns a channel closed when the worker has stopped serving: after
// Shutdown, or once its connection is closed for good (an in-process
// connection whose server stopped).
func (w *Worker) Done() <-chan struct{} { return w.done }

// Stats returns a snapshot of the worker's counters.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{
		Received:   w.received.Load(),
		Ran:        w.ran.Load(),
		Skipped:    w.skipped.Load(),
		HandedBack: w.handedBack.Load(),
	}
}

// serve is a slot's loop: take the next call, run it, again, until
// Shutdown (ctx ends) or the connection is closed for good. first says
// the slot is idle already.
func (w *Worker) serve(ctx context.Context, s *slot, first bool) {
	defer func() {
		if w.live.Add(-1) == 0 {
			close(w.done)
		}
	}()
	for idle := first; !w.draining.Load(); idle = false {
		msg := w.pull.take(ctx, s, idle)
		if msg == nil {
			if w.conn.nc.IsClosed() {
				w.lostOnce.Do(func() { w.logger.Error("connection closed; the worker stops serving") })
				return
			}
			if ctx.Err() != nil {
				return
			}
			continue
		}
		w.received.Add(1)
		if w.draining.Load() {
			w.handBackMsg(msg)
			continue
		}
		if !w.handleGuarded(ctx, s, msg) {
			return // runtime.Goexit: a new goroutine serves the slot
		}
	}
}

// handleGuarded is handle, surviving a task that calls runtime.Goexit on
// this goroutine (an executor that runs calls inline, as executor/local
// does without a limit, runs the task here). Nothing can stop Goexit: the
// deferred function answers the call as a *executor.PanicError matching
// executor.ErrGoexit, records it, and starts a new goroutine for the slot
// before this one ends. It reports false in that case.
func (w *Worker) handleGuarded(ctx context.Context, s *slot, msg jetstream.Msg) (returned bool) {
	defer func() {
		if returned {
			return
		}
		if v := recover(); v != nil {
			panic(v) // the worker's own bug, not a task's: never hidden
		}
		s.mu.Lock()
		key, what := s.key, s.what
		s.mu.Unlock()
		task := ""
		if hc, _, err := envelope.DecodeCall(msg.Data()); err == nil {
			task = hc.Task
		}
		delivery := uint64(1)
		if meta, err := msg.Metadata(); err == nil {
			delivery = meta.NumDelivered
		}
		w.logger.Warn("a task called runtime.Goexit; answering it as a panic", "call", what)
		if key != "" && !s.ran() {
			perr := &executor.PanicError{Task: task, Value: executor.ErrGoexit, Stack: debug.Stack()}
			w.settle(s, msg, w.store(key, task, w.result(nil, task, nil, perr, delivery, 0, 0, "")))
		} else {
			s.end()
		}
		w.live.Add(1) // before this goroutine's serve counts itself out
		go w.serve(ctx, s, false)
	}()
	w.handle(s, msg)
	return true
}

func (w *Worker) handBackMsg(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		w.logger.Debug("hand back", "error", err)
	}
	w.handedBack.Add(1)
}

// handle runs one delivered call and records its result.
func (w *Worker) handle(s *slot, msg jetstream.Msg) {
	delivery := uint64(1)
	if meta, err := msg.Metadata(); err == nil {
		delivery = meta.NumDelivered
	}
	hc, input, err := envelope.DecodeCall(msg.Data())
	if err != nil {
		if hc.Key == "" {
			w.logger.Error("dropping a call message without a result key", "error", err)
			_ = msg.Term()
			return
		}
		w.fail(s, msg, hc.Key, delivery, &executor.CrashError{Task: hc.Task, Reason: err.Error()})
		return
	}
	if w.wasCancelled(hc.Key) {
		w.skip(msg)
		return
	}
	if delivery > 1 || hc.Again {
		// Delivered again while a live worker still holds the call (a new
		// consumer leader that redelivers what the dead one handed out,
		// before the holder's heartbeat reaches it): leave it to the
		// holder. Asked first, and the bucket looked into after, so that a
		// holder that records the result in between is seen by the look.
		if holder := w.heldBy(hc.Key); holder != "" {
			w.leaveToHolder(msg, hc.Key, holder)
			return
		}
		// Delivered again: the worker before may have recorded the result
		// and died before acknowledging. Or collected (Executor.Collect):
		// published again, after the dedup window, for an attempt whose
		// result may have been recorded since the submitter looked.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := w.obj.kv.Get(ctx, hc.Key)
		cancel()
		if err == nil {
			w.skip(msg)
			return
		}
	}
	h, err := w.opts.Registry.Lookup(hc.Task)
	if err != nil {
		var ue *executor.UnknownTaskError
		if errors.As(err, &ue) {
			ue.Where = "cluster worker " + w.name
		}
		w.fail(s, msg, hc.Key, delivery, err)
		return
	}
	if hc.Hard && w.opts.Executor.Enforcement() != executor.Hard {
		w.fail(s, msg, hc.Key, delivery, &enforcementError{task: hc.Task, worker: w.name, has: w.opts.Executor.Enforcement()})
		return
	}

	parent := context.Background()
	endObserved := func(error) {} // ends the observer's worker span, once
	call := executor.Call{
		Handler: h, Input: executor.Raw(input), RunID: hc.Run, Attempt: hc.Attempt,
		Limit: hc.Limit, Grace: hc.Grace,
	}
	if hc.TraceParent != "" || hc.Timed {
		call.Trace = &executor.Trace{Parent: hc.TraceParent, State: hc.TraceState}
	}
	if obs := w.opts.Registry.Observer(); obs != nil {
		wc := &observe.WorkerCall{Task: hc.Task, RunID: hc.Run, Attempt: hc.Attempt, Worker: w.name,
			TraceParent: hc.TraceParent, TraceState: hc.TraceState, Start: time.Now()}
		parent = obs.WorkerStart(parent, wc)
		tp, ts := observe.Clean(wc.TraceParent, wc.TraceState)
		call.Trace = &executor.Trace{Parent: tp, State: ts}
		ended := false
		endObserved = func(err error) {
			if ended {
				return
			}
			ended = true
			wc.End = time.Now()
			if err != nil {
				wc.Err, wc.Class = err, string(executor.ClassOf(err))
			}
			obs.WorkerEnd(wc)
		}
		// Ended as soon as the executor answers (below), before the result
		// is stored: the submitter, who may learn of it at once, then sees
		// a trace whose worker span has ended. This is for the other ways
		// out of handle.
		defer func() { endObserved(nil) }()
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var fwd *logForwarder
	if hc.Log && hc.Reply != "" {
		fwd = &logForwarder{nc: w.conn.nc, subject: hc.Reply, key: hc.Key, delivery: delivery}
		call.Logger = hclog.New(&hclog.LoggerOptions{Output: fwd, JSONFormat: true, Level: hclog.Trace})
	}
	s.begin(msg, hc.Key, call.String(), cancel)
	if w.wasCancelled(hc.Key) { // a cancellation that came while we looked
		cancel()
	}
	if hc.Reply != "" && (hc.Limit > 0 || hc.Hard || hc.Timed) {
		ev := envelope.AppendEvent(nil, envelope.Event{Kind: envelope.Started, Delivery: delivery, Key: hc.Key})
		if err := w.conn.nc.Publish(hc.Reply, ev); err != nil {
			w.logger.Debug("cannot send a start event", "error", err)
		}
	}
	// Counted before Submit: an executor may run the call inside Submit.
	w.ran.Add(1)
	submitted := time.Now()
	f, err := w.opts.Executor.Submit(ctx, call)
	if err != nil {
		// The executor refused it (closed, full): another worker may not.
		w.logger.Warn("the executor refused a call; handing it back", "call", call.String(), "error", err)
		if !s.end() {
			w.handBackMsg(msg)
		}
		return
	}
	v, err := f.Wait(context.Background())
	endObserved(err)
	if hc.Hard && hc.Reply != "" {
		// A hard submitter that cancelled the call waits for this: the
		// executor returned it, so its process group is dead.
		ev := envelope.AppendEvent(nil, envelope.Event{Kind: envelope.Stopped, Delivery: delivery, Key: hc.Key})
		if err := w.conn.nc.Publish(hc.Reply, ev); err != nil {
			w.logger.Debug("cannot send a stop event", "error", err)
		}
	}
	if s.ran() {
		s.end()
		return // handed back by Shutdown; another worker runs it
	}
	var logs uint64
	if fwd != nil {
		logs = fwd.n.Load()
	}
	var ran time.Duration
	if hc.Timed {
		started := f.Started()
		if started.IsZero() {
			started = submitted
		}
		ran = max(time.Since(started), 1)
	}
	rec := w.result(h, hc.Task, v, err, delivery, logs, ran, f.Worker())
	w.settle(s, msg, w.store(hc.Key, hc.Task, rec))
}

// settle ends s's call: it acknowledges msg once its result is stored, and
// hands it back for another delivery if storing failed. It does neither if
// the slot was given up meanwhile (s.end says so).
func (w *Worker) settle(s *slot, msg jetstream.Msg, stored bool) {
	if s.end() {
		return
	}
	if !stored {
		w.handBackMsg(msg)
		return
	}
	w.ack(msg)
}

// reannounce writes the call's recorded result again, unchanged, as a new
// revision, when a worker's own result was refused because one was
// recorded first (the first result stands). That happens when a call is
// submitted again with the identity of a call already answered, after the
// dedup window: it is published and run again, and its new submitter
// waits on the bucket's watcher, which had delivered the record before it
// was waiting and would not deliver it again. Failures are only logged:
// the submitter's backstop still answers a limited call.
func (w *Worker) reannounce(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	entry, err := w.obj.kv.Get(ctx, key)
	if err == nil {
		_, err = w.obj.kv.Update(ctx, key, entry.Value(), entry.Revision())
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		w.logger.Debug("cannot announce a call's recorded result again", "key", key, "error", err)
	}
}

// holdsWait bounds how long a worker waits for another to say it holds a
// call delivered again. Holders answer at once from their connection's
// callback (core NATS: no JetStream leader is needed), so silence for
// that long means nobody holds it.
const holdsWait = 750 * time.Millisecond

// heldBy asks every worker, over core NATS, whether one of them holds the
// call key: runs it, or ran it and has not recorded its result yet. It
// returns the first holder's name, or "" when none answers within
// holdsWait (or the question cannot be sent: then the call is run, as it
// was before workers asked).
func (w *Worker) heldBy(key string) string {
	m, err := w.conn.nc.Request(w.opts.Setup.holdsSubject(), []byte(key), holdsWait)
	if err != nil {
		if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) {
			w.logger.Debug("asking who holds a call", "key", key, "error", err)
		}
		return ""
	}
	return string(m.Data)
}

// leaveToHolder leaves a call delivered again to the live worker that
// holds it. The message is handed back with a delay of the ack wait, so
// that it is not lost: if the holder records the result and acknowledges,
// the message is gone; if the holder dies first, its heartbeats stop and
// the call is delivered again an ack wait later (each of the holder's
// heartbeats pushes that back by an ack wait, as for any held call), to a
// worker that finds no holder and runs it.
func (w *Worker) leaveToHolder(msg jetstream.Msg, key, holder string) {
	w.logger.Debug("a call delivered again is held by another worker; leaving it to it", "key", key, "holder", holder)
	if err := msg.NakWithDelay(w.obj.consumer.CachedInfo().Config.AckWait); err != nil {
		w.logger.Debug("handing back a held call", "error", err)
	}
	w.skipped.Add(1)
}

// onHolds answers a worker asking whether this one holds a call: it does
// from the slot's begin to its end, which covers the run and the writing
// of the result. A call handed back by Shutdown is not held: its result
// will be dropped. It runs on the connection's callback goroutine.
func (w *Worker) onHolds(m *nats.Msg) {
	key := string(m.Data)
	if key == "" || m.Reply == "" {
		return
	}
	held := false
	for _, s := range w.slots {
		s.mu.Lock()
		held = s.key == key && s.msg != nil && !s.handedBack
		s.mu.Unlock()
		if held {
			break
		}
	}
	if held {
		if err := m.Respond([]byte(w.name)); err != nil {
			w.logger.Debug("answering who holds a call", "error", err)
		}
	}
}

func (w *Worker) skip(msg jetstream.Msg) {
	w.skipped.Add(1)
	w.ack(msg)
}

// ack acknowledges msg, whose call has its result recorded, and keeps its
// ack subject for a while: an ack sent to a consumer leader that died is
// lost, and the call would wait in the stream for the ack wait, to be
// delivered again and skipped. reack repeats it once the consumer answers
// again.
func (w *Worker) ack(msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		w.logger.Debug("acknowledging a call failed", "error", err)
	}
	now := time.Now()
	w.mu.Lock()
	w.acks = append(w.acks, sentAck{subject: msg.Reply(), at: now})
	// Keep recentAcks' worth, and at most maxRecentAcks.
	drop := 0
	for drop < len(w.acks) && (now.Sub(w.acks[drop].at) > recentAcks || len(w.acks)-drop > maxRecentAcks) {
		drop++
	}
	if drop > len(w.acks)/2 {
		w.acks = append(w.acks[:0], w.acks[drop:]...)
	} else if drop > 0 {
		w.acks = w.acks[drop:]
	}
	w.mu.Unlock()
}

// reack repeats the acknowledgements sent since since. Repeating one that
// landed does nothing: the call's message is gone, or its result is
// recorded whoever holds it now.
func (w *Worker) reack(since time.Time) {
	w.mu.Lock()
	var subjects []string
	for _, a := range w.acks {
		if !a.at.Before(since) {
			subjects = append(subjects, a.subject)
		}
	}
	w.mu.Unlock()
	for _, subj := range subjects {
		if err := w.conn.nc.Publish(subj, []byte("+ACK")); err != nil {
			w.logger.Debug("repeating an acknowledgement failed", "error", err)
			return
		}
	}
	if len(subjects) > 0 {
		w.logger.Debug("repeated acknowledgements sent while the consumer did not answer", "count", len(subjects))
	}
}

// sentAck is an acknowledgement sent.
type sentAck struct {
	subject string
	at      time.Time
}

// recentAcks is how long acknowledgements are kept for reack, and
// maxRecentAcks how many at most.
const (
	recentAcks    = 10 * time.Second
	maxRecentAcks = 8192
)

// fail records err as the call's result without running it, and
// acknowledges the message.
func (w *Worker) fail(s *slot, msg jetstream.Msg, key string, delivery uint64, err error) {
	s.begin(msg, key, key, nil)
	s.ran()
	w.settle(s, msg, w.store(key, "", w.result(nil, "", nil, err, delivery, 0, 0, "")))
}

// result encodes a call's outcome as a result record. A result that
// cannot be encoded, or whose record is over what the server takes, is an
// *executor.OutputError; an error whose record is too large keeps its
// class and the start of its message.
func (w *Worker) result(h *executor.Handler, task string, v any, err error, delivery, logs uint64, ran time.Duration, where string) []byte {
	worker := w.name
	if where != "" {
		worker += "/" + where
	}
	limit := w.conn.nc.MaxPayload() - headerBudget
	r := envelope.Result{Kind: envelope.Output, Delivery: delivery, Logs: logs, Worker: worker, Ran: ran}
	if err == nil {
		if r.Payload, err = h.EncodeOutput(v); err == nil {
			rec := envelope.AppendResult(nil, r)
			if int64(len(rec)) <= limit {
				return rec
			}
			err = &executor.OutputError{Task: task, Type: h.OutputType().String(),
				Err: fmt.Errorf("the result record is %d bytes, over the %d bytes the NATS server takes", len(rec), limit)}
		}
	}
	r.Kind = envelope.Failure
	var jerr error
	if r.Payload, jerr = json.Marshal(wire.EncodeError(err)); jerr != nil {
		r.Payload, _ = json.Marshal(wire.EncodeError(fmt.Errorf("%s (its details could not be encoded: %v)", err.Error(), jerr)))
	}
	rec := envelope.AppendResult(nil, r)
	if int64(len(rec)) > limit {
		msg := err.Error()
		msg = msg[:min(len(msg), 4096)]
		r.Payload, _ = json.Marshal(wire.EncodeError(&classed{msg: msg + " ... (message cut: too large to record)", class: executor.ClassOf(err)}))
		rec = envelope.AppendResult(nil, r)
	}
	return rec
}

// classed is an error message with a class, for an error too large to
// record whole.
type classed struct {
	msg   string
	class executor.Class
}

func (c *classed) Error() string { return c.msg }

// ErrorClass returns the class of the error it stands for.
func (c *classed) ErrorClass() executor.Class { return c.class }

// store writes a result record, create-if-absent, retrying while the
// servers cannot take it for now (a leader election, a reconnect). A
// record refused for good (transient says which) is replaced once by an
// *executor.OutputError naming the refusal, so the call is answered
// promptly instead of delivered again. It reports false when it gave up:
// the connection is closed, the replacement was refused too, or Shutdown
// stopped waiting.
func (w *Worker) store(key, task string, rec []byte) bool {
	backoff := 50 * time.Millisecond
	replaced := false
	for warned := false; ; {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := w.createRecord(ctx, key, rec)
		cancel()
		if errors.Is(err, jetstream.ErrKeyExists) {
			w.reannounce(key)
			return true
		}
		if err == nil {
			return true
		}
		if w.conn.nc.IsClosed() {
			w.logger.Error("cannot record a result: connection closed", "key", key, "error", err)
			return false
		}
		if !transient(err) {
			if replaced {
				w.logger.Error("cannot record a result", "key", key, "error", err)
				return false
			}
			w.logger.Warn("the server refused a result; recording the refusal instead", "key", key, "error", err)
			old, _ := envelope.DecodeResult(rec)
			rec = envelope.AppendResult(nil, envelope.Result{Kind: envelope.Failure, Delivery: old.Delivery, Worker: old.Worker,
				Payload: errorPayload(&executor.OutputError{Task: task, Type: "result record", Err: fmt.Errorf("the server refused it: %w", err)})})
			replaced = true
			continue
		}
		if !warned {
			w.logger.Warn("cannot record a result; retrying", "key", key, "error", err)
			warned = true
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.abort:
			t.Stop()
			return false
		}
		backoff = min(2*backoff, storeRetryMax)
	}
}

// storeRetryMax bounds the pause between attempts to record a result
// while the bucket cannot take it (its leader died: an election), so a
// result lands within that of the new leader's election.
const storeRetryMax = 250 * time.Millisecond

// storeTimeout bounds one attempt to record a result. It is short: a
// write sent to a server that just died is never answered, and is better
// repeated soon (create-if-absent makes a repeat safe: a write that did
// land answers the repeat with "key exists") than waited for.
const storeTimeout = time.Second

// errorPayload is err in the wire form of a failure record.
func errorPayload(err error) []byte {
	b, jerr := json.Marshal(wire.EncodeError(err))
	if jerr != nil {
		b, _ = json.Marshal(wire.EncodeError(errors.New(err.Error())))
	}
	return b
}

func (s *slot) begin(msg jetstream.Msg, key, what string, cancel context.CancelFunc) {
	s.mu.Lock()
	s.msg, s.key, s.what, s.cancel = msg, key, what, cancel
	s.running, s.beat, s.handedBack = true, time.Now(), false
	s.mu.Unlock()
}

// ran marks the call as returned by the executor, and reports whether it
// was handed back meanwhile.
func (s *slot) ran() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = false
	return s.handedBack
}

// end makes the slot idle, and reports whether its call was handed back.
func (s *slot) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	handedBack := s.handedBack
	s.msg, s.key, s.what, s.cancel, s.running, s.handedBack = nil, "", "", nil, false, false
	return handedBack
}

// heartbeat keeps the calls the worker holds from being delivered again,
// and forgets old cancellations.
func (w *Worker) heartbeat() {
	defer close(w.beatDone)
	// Ticking at half the interval keeps every gap under 1.5 intervals.
	t := time.NewTicker(w.hb / 2)
	defer t.Stop()
	for {
		select {
		case <-w.beatStop:
			return
		case <-w.conn.reconnected:
			// A new server, perhaps a new consumer leader: tell it now,
			// and repeat the acks the old server may have taken with it.
			w.beatAll(time.Now(), true)
			if lost := w.conn.lost.Load(); lost != 0 {
				w.reack(time.Unix(0, lost).Add(-time.Second))
			}
		case <-w.beatKick:
			w.beatAll(time.Now(), true)
			w.mu.Lock()
			since := w.failedAt
			w.failedAt = time.Time{}
			w.mu.Unlock()
			if !since.IsZero() {
				// Acks sent up to a pull's life before the first failure
				// may have gone to the dead leader too.
				w.reack(since.Add(-2 * pullWait))
			}
		case now := <-t.C:
			w.beatAll(now, false)
			w.mu.Lock()
			for k, at := range w.cancelled {
				if now.Sub(at) > w.opts.Setup.DedupWindow {
					delete(w.cancelled, k)
				}
			}
			w.mu.Unlock()
		}
	}
}

// noteFailure records when pulls began to fail, unless they failed
// already: once they succeed again, the heartbeat goroutine repeats the
// acknowledgements sent since shortly before.
func (w *Worker) noteFailure() {
	w.mu.Lock()
	if w.failedAt.IsZero() {
		w.failedAt = time.Now()
	}
	w.mu.Unlock()
}

// kickBeat makes the heartbeat goroutine heartbeat every held call now.
func (w *Worker) kickBeat() {
	select {
	case w.beatKick <- struct{}{}:
	default:
	}
}

// beatAll sends InProgress for each held call whose heartbeat is due, or
// for every held call with all.
func (w *Worker) beatAll(now time.Time, all bool) {
	for _, s := range w.slots {
		s.mu.Lock()
		msg := s.msg
		due := msg != nil && (all || now.Sub(s.beat) >= w.hb)
		if due {
			s.beat = now
		}
		s.mu.Unlock()
		if due {
			if err := msg.InProgress(); err != nil {
				w.logger.Debug("heartbeat", "error", err)
			}
		}
	}
}

func (w *Worker) wasCancelled(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.cancelled[key]
	return ok
}

// onCancel cancels a call that a submitter gave up on. It runs on the
// connection's callback goroutine: no lock is held while a call's context
// is cancelled or a line is logged.
func (w *Worker) onCancel(m *nats.Msg) {
	key := string(m.Data)
	w.mu.Lock()
	w.cancelled[key] = time.Now()
	w.mu.Unlock()
	for _, s := range w.slots {
		s.mu.Lock()
		var cancel context.CancelFunc
		what := s.what
		if s.key == key {
			cancel = s.cancel
		}
		s.mu.Unlock()
		if cancel != nil {
			cancel()
			w.logger.Debug("call cancelled by its submitter", "call", what)
		}
	}
}

// onAdvisory queues a call whose deliveries are exhausted for the
// worker's jobs goroutine: the connection's callback goroutine makes no
// JetStream requests.
func (w *Worker) onAdvisory(m *nats.Msg) {
	var a advisory
	if err := json.Unmarshal(m.Data, &a); err != nil {
		w.logger.Debug("malformed advisory", "error", err)
		return
	}
	w.mu.Lock()
	w.advisories = append(w.advisories, a)
	w.mu.Unlock()
	select {
	case w.jobKick <- struct{}{}:
	default:
	}
}

// jobs records the failures of calls whose deliveries are exhausted, one
// at a time, until the worker stops.
func (w *Worker) jobs() {
	defer close(w.jobsDone)
	for {
		select {
		case <-w.beatStop:
			return
		case <-w.jobKick:
		}
		for {
			w.mu.Lock()
			todo := w.advisories
			w.advisories = nil
			w.mu.Unlock()
			if len(todo) == 0 {
				break
			}
			for _, a := range todo {
				ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
				exhausted(ctx, w.obj, a, w.logger)
				cancel()
			}
		}
	}
}

// Shutdown drains the worker: it stops pulling, lets the calls it runs
// finish and record their results, then closes its connection. If ctx
// ends first, the calls still running are handed back (Nak: JetStream
// delivers them to another worker at once) and cancelled, and Shutdown
// returns an *executor.ShutdownError naming them; their results are then
// dropped, and a later Shutdown waits for the executor to return them.
// The worker's Executor is not shut down. Shutdown may be called more
// than once.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.draining.Store(true)
	w.drainOnce.Do(w.stopPulls)
	select {
	case <-w.done:
	case <-ctx.Done():
		var running []string
		var back []jetstream.Msg
		var cancels []context.CancelFunc
		for _, s := range w.slots {
			s.mu.Lock()
			if s.msg != nil {
				running = append(running, s.what)
				if s.running && !s.handedBack {
					s.handedBack = true
					if s.cancel != nil {
						cancels = append(cancels, s.cancel)
					}
					back = append(back, s.msg)
				}
			}
			s.mu.Unlock()
		}
		// Outside the slots' locks: a Nak is a round trip to the server.
		for _, c := range cancels {
			c()
		}
		for _, m := range back {
			w.handBackMsg(m)
		}
		w.abortOnce.Do(func() { close(w.abort) })
		if len(running) > 0 {
			sort.Strings(running)
			return &executor.ShutdownError{Running: running, Err: ctx.Err()}
		}
		<-w.done
	}
	w.closeOnce.Do(func() {
		close(w.pull.stop)
		<-w.pull.done
		close(w.beatStop)
		<-w.beatDone
		<-w.jobsDone
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.conn.close(cctx)
		w.logger.Info("worker stopped", "stats", fmt.Sprintf("%+v", w.Stats()))
	})
	return nil
}

// Serve runs a worker until ctx ends, then shuts it down, giving the calls
// it runs opts.DrainTimeout to finish. It returns NewWorker's error,
// Shutdown's, or an error if the worker stopped serving on its own (its
// connection closed for good). It is what a worker program's main calls.
func Serve(ctx context.Context, opts WorkerOptions) error {
	w, err := NewWorker(opts)
	if err != nil {
		return err
	}
	var lost error
	select {
	case <-ctx.Done():
	case <-w.Done():
		lost = errors.New("executor/cluster: worker stopped serving: connection closed")
	}
	drain := opts.DrainTimeout
	if drain <= 0 {
		drain = 30 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	return errors.Join(lost, w.Shutdown(sctx))
}

// logForwarder sends a call's JSON log lines to its submitter.
type logForwarder struct {
	nc       *nats.Conn
	subject  string
	key      string
	delivery uint64
	n        atomic.Uint64
}

func (f *logForwarder) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(line) == 0 {
			continue
		}
		f.n.Add(1)
		ev := envelope.AppendEvent(nil, envelope.Event{Kind: envelope.Log, Delivery: f.delivery, Key: f.key, Payload: line})
		if err := f.nc.Publish(f.subject, ev); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// enforcementError refuses a call whose submitter requires hard limits on
// a worker whose executor enforces soft ones.
type enforcementError struct {
	task, worker string
	has          executor.Enforcement
}

func (e *enforcementError) Error() string {
	return fmt.Sprintf("executor/cluster: task %q: the submitter requires hard timeouts but worker %s enforces %v ones",
		e.task, e.worker, e.has)
}

// ErrorClass returns executor.ClassFatal: running it again on the same
// workers cannot help.
func (e *enforcementError) ErrorClass() executor.Class { return executor.ClassFatal }
