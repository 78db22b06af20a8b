package cluster

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster/internal/envelope"
	"github.com/flowline-go/flowline/internal/callstats"
	"github.com/flowline-go/flowline/internal/wire"
)

// Options configure an Executor. A Connection (a URL or a Server) is
// required; every other zero field means its documented default: default
// names and settings, soft enforcement declared.
type Options struct {
	// Connection says which NATS to use: a URL, or a Server in the same
	// process (a *natsserver.Server). One of them is required.
	Connection

	// StopServer makes Shutdown stop Connection.Server once the
	// executor's connection is closed, for a server started for this
	// executor alone. The server must then have a Shutdown method
	// (*natsserver.Server has). Ignored with a URL.
	StopServer bool

	// Setup names the stream, consumer and bucket, and their settings.
	Setup

	// Enforcement declares how the workers enforce limits: executor.Soft
	// (the default) when they run calls on an in-process executor such as
	// executor/local or executor/pool, executor.Hard when they run them on
	// executor/subprocess. It is what Enforcement reports and what the
	// executor's own timeouts carry. A call submitted with Hard declared
	// is refused by a worker whose executor is soft, with an error of
	// class executor.ClassFatal, so a weaker guarantee is never given
	// silently.
	Enforcement executor.Enforcement

	// TimeoutMargin is added to a call's limit, grace and the consumer's
	// ack wait to give the time after the call started on a worker by
	// which its result must have arrived; past it, unless a result is
	// recorded in the bucket, the call fails with an
	// *executor.TimeoutError (Soft and not Stopped: the work may still
	// run somewhere). The ack wait is in the sum so that a dead worker's
	// call is delivered again, and restarts the clock, before it fires.
	// It covers a worker that is alive but cannot report, and should
	// exceed any leader election (several seconds). With Hard declared
	// it also bounds, with the call's grace, how long a cancellation
	// waits for the worker's report that the call stopped. Default 10s.
	TimeoutMargin time.Duration

	// PublishTimeout is how long the executor waits for the server to
	// acknowledge a submitted call before publishing it again, with the
	// same message id so that it is never queued twice. Retries stop at
	// half the dedup window, and the call then fails. It bounds how long
	// a call published just as the stream's leader died waits before it
	// is published again (to the new leader, once elected). Default 2s.
	PublishTimeout time.Duration

	// MaxPending bounds the submitted calls awaiting the server's
	// acknowledgement (a call is pending only until the server has stored
	// it, not until it is answered). Submit waits for room while its
	// context allows; TrySubmit fails at once with executor.ErrQueueFull.
	// Default 4096.
	MaxPending int

	// Logger receives the executor's own messages, named "cluster". Nil
	// means no logging. Task log lines go to each Call's Logger.
	Logger hclog.Logger
}

// Executor submits calls to NATS JetStream for workers (see Worker) to run
// and learns their results from a key-value bucket. It is safe for
// concurrent use. The zero value is not usable: call New.
type Executor struct {
	opts    Options
	logger  hclog.Logger
	server  Server // in-process server, if any
	owned   bool   // Shutdown stops server (StopServer)
	conn    *conn
	js      jetstream.JetStream
	obj     objects
	id      string
	events  string         // subject the workers send events to
	replays sync.WaitGroup // log replay goroutines; teardown waits for them
	ackWait time.Duration  // the consumer's

	watcher    jetstream.KeyWatcher // under mu: the watchdog replaces it
	stopWatch  context.CancelFunc
	watchDone  chan struct{}
	watchSwap  chan struct{}    // the watchdog replaced the watcher; size 1
	seenRev    atomic.Uint64    // the highest bucket revision delivered (by the watcher or the watchdog)
	kvStream   jetstream.Stream // the bucket's stream, for the watchdog's direct reads
	dogStop    chan struct{}
	dogDone    chan struct{}
	eventSub   *nats.Subscription
	adviseSub  *nats.Subscription
	janitorEnd chan struct{}

	// A taken record's rewrite (forget): its subject is kvPrefix + key
	// ("$KV.<bucket>.<key>"), its header takenHeader, nil to keep taken
	// records as long as the bucket keeps any.
	kvPrefix    string
	takenHeader nats.Header
	forgets     forgetBatch

	stats callstats.Counters // Abandoned stays zero: see Stats

	// room holds one token per publish awaiting the server's answer, at
	// most MaxPending (its capacity); the answer (the ack or error
	// callback) takes the token out. closing is closed when Shutdown
	// begins, which ends every wait for room.
	room    chan struct{}
	closing chan struct{}

	closed atomic.Bool   // set under mu; read without it on Submit's fast path
	seq    atomic.Uint64 // numbers the calls without a RunID (callID)

	mu       sync.Mutex
	inflight int                 // accepted calls whose futures are not complete yet
	idle     chan struct{}       // closed when closed and inflight reaches 0
	pending  map[string]*pending // by result key; several calls may share a key
	timers   timerHeap           // backstops and waits for log lines
	retries  []*pending          // publishes to repeat, at p.retryAt
	jobs     []func(context.Context)
	kick     chan struct{} // wakes the janitor; size 1
	stopping bool          // the janitor ends once its work is done
	torn     bool          // resources released
}

var _ executor.Executor = (*Executor)(nil)

// logWait is how long a result waits for log lines its worker sent before
// it: lines travel apart from results and may arrive a little later.
const logWait = 2 * time.Second

// jobTimeout bounds one request of the executor's background work.
const jobTimeout = 10 * time.Second

// New connects to NATS, creates the stream, consumer and bucket if they
// are missing, and starts watching for results. It fails without a URL or
// a Server, or if the server cannot be reached or the objects cannot be
// created.
func New(opts Options) (*Executor, error) {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("cluster")
	if err := opts.Setup.setDefaults(); err != nil {
		return nil, err
	}
	if opts.Enforcement == 0 {
		opts.Enforcement = executor.Soft
	}
	if opts.Enforcement != executor.Soft && opts.Enforcement != executor.Hard {
		return nil, fmt.Errorf("executor/cluster: invalid enforcement %v", opts.Enforcement)
	}
	if opts.TimeoutMargin <= 0 {
		opts.TimeoutMargin = 10 * time.Second
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 2 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 4096
	}
	e := &Executor{
		opts:       opts,
		logger:     logger,
		server:     opts.Server,
		id:         newID(),
		pending:    make(map[string]*pending),
		kick:       make(chan struct{}, 1),
		watchDone:  make(chan struct{}),
		watchSwap:  make(chan struct{}, 1),
		dogStop:    make(chan struct{}),
		dogDone:    make(chan struct{}),
		janitorEnd: make(chan struct{}),
		room:       make(chan struct{}, opts.MaxPending),
		closing:    make(chan struct{}),
	}
	if opts.URL != "" {
		e.server = nil
	} else if opts.Server != nil {
		e.owned = opts.StopServer
	}
	if err := e.start(); err != nil {
		e.teardown(context.Background())
		return nil, err
	}
	go e.dispatch()
	go e.janitor()
	return e, nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (e *Executor) start() error {
	var err error
	e.conn, err = e.opts.Connection.connect("flowline submitter", e.logger)
	if err != nil {
		return err
	}
	e.js, err = jetstream.New(e.conn.nc,
		// The room is e.room's: the client's own bound is never reached.
		jetstream.WithPublishAsyncMaxPending(2*e.opts.MaxPending),
		jetstream.WithPublishAsyncTimeout(e.opts.PublishTimeout),
		jetstream.WithPublishAsyncAckHandler(e.onPubAck),
		jetstream.WithPublishAsyncErrHandler(e.onPubErr),
	)
	if err != nil {
		return fmt.Errorf("executor/cluster: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.startTimeout())
	defer cancel()
	if e.obj, err = e.opts.Setup.ensure(ctx, e.js, e.logger); err != nil {
		return err
	}
	e.ackWait = e.obj.consumer.CachedInfo().Config.AckWait
	e.events = e.opts.Setup.eventsSubject(e.id)
	if e.eventSub, err = e.conn.nc.Subscribe(e.events, e.onEvent); err != nil {
		return fmt.Errorf("executor/cluster: subscribe to events: %w", err)
	}
	if e.adviseSub, err = e.conn.nc.Subscribe(e.opts.Setup.advisorySubject(), e.onAdvisory); err != nil {
		return fmt.Errorf("executor/cluster: subscribe to advisories: %w", err)
	}
	// Only results written from now on: this executor has submitted
	// nothing yet, and a re-submission of an older call reads its result
	// with a Get (see onPubAck). The watch lives until teardown: its
	// context must not be start's.
	wctx, wcancel := context.WithCancel(context.Background())
	e.stopWatch = wcancel
	if e.watcher, err = e.obj.kv.WatchAll(wctx, jetstream.UpdatesOnly()); err != nil {
		return fmt.Errorf("executor/cluster: watch results: %w", err)
	}
	if st, err := e.obj.kv.Status(ctx); err == nil {
		e.noteRev(bucketLastSeq(st))
	}
	err = retry(ctx, e.logger, func(ctx context.Context) error {
		var err error
		e.kvStream, err = e.js.Stream(ctx, "KV_"+e.opts.Setup.Bucket)
		return err
	})
	if err != nil {
		return fmt.Errorf("executor/cluster: bucket %s: %w", e.opts.Setup.Bucket, err)
	}
	e.kvPrefix = "$KV." + e.opts.Setup.Bucket + "."
	if e.opts.Setup.shortens(e.kvStream.CachedInfo().Config) {
		e.takenHeader = takenHeader(e.opts.Setup.TakenTTL)
		e.forgets.send = e.sendForgets
	} else {
		e.logger.Debug("taken results stay as long as the bucket keeps any", "bucket", e.opts.Setup.Bucket,
			"per-message TTLs", e.kvStream.CachedInfo().Config.AllowMsgTTL, "max age", e.kvStream.CachedInfo().Config.MaxAge)
	}
	go e.watchdog(wctx)
	return nil
}

// bucketLastSeq is the bucket's last revision, from its stream's state.
func bucketLastSeq(st jetstream.KeyValueStatus) uint64 {
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo() != nil {
		return bs.StreamInfo().State.LastSeq
	}
	return 0
}

// noteRev records that the watcher has delivered revision rev.
func (e *Executor) noteRev(rev uint64) {
	for {
		old := e.seenRev.Load()
		if rev <= old || e.seenRev.CompareAndSwap(old, rev) {
			return
		}
	}
}

// watchCheck is how often the watchdog compares the bucket's last
// revision with what the watcher delivered.
const watchCheck = 500 * time.Millisecond

// bridgeCheck is how often the watchdog reads the bucket while the
// watcher is stalled: the latency of a result until a new watcher is in
// place.
const bridgeCheck = 100 * time.Millisecond

// bridgeMax bounds the revisions the watchdog reads in one check while
// the watcher is stalled; the rest wait for the next check.
const bridgeMax = 4096

// watchdog keeps results flowing when the watcher stalls. The watcher is
// an ordered consumer, a single copy on one server: when that server
// dies, or the connection moves, results stop arriving until the client
// notices missed heartbeats (10-20 s), and a new one cannot be created
// before JetStream's meta leader answers (a leader election when the
// dead server led it: 4-9 s). The watchdog reads the bucket's last
// revision every watchCheck; a revision that was in the bucket at the
// previous check and has still not been delivered means a stall. From
// then on, until a new watcher is in place, every check reads the
// revisions not delivered yet straight from the bucket's stream (direct
// gets, which any current replica answers, without a leader) and
// delivers them, while a new watcher that resumes after the last
// revision delivered is created in the background. No result is missed,
// and one read twice is delivered once (deliver is idempotent).
func (e *Executor) watchdog(wctx context.Context) {
	defer close(e.dogDone)
	var creating sync.WaitGroup
	defer creating.Wait()
	t := time.NewTimer(watchCheck)
	defer t.Stop()
	var (
		prev    uint64        // the bucket's last revision at the previous check
		stalled bool          // the watcher is stalled and not replaced yet
		done    chan struct{} // closed by the background re-creation; nil if none runs
		ok      atomic.Bool   // what it achieved
	)
	for {
		select {
		case <-e.dogStop:
			return
		case <-t.C:
		}
		if done != nil {
			select {
			case <-done:
				done = nil
				if ok.Load() {
					stalled = false
				}
			default:
			}
		}
		if stalled {
			t.Reset(bridgeCheck)
		} else {
			t.Reset(watchCheck)
		}
		ctx, cancel := context.WithTimeout(wctx, watchCheck)
		st, err := e.obj.kv.Status(ctx)
		cancel()
		if err != nil {
			e.logger.Debug("cannot read the result bucket's state", "error", err)
			continue
		}
		last := bucketLastSeq(st)
		if seen := e.seenRev.Load(); prev > seen && !stalled {
			stalled = true
			e.logger.Warn("the result watcher stalled; reading results from the bucket until it is replaced", "from revision", seen+1)
		}
		if stalled {
			e.bridge(wctx, last)
			if done == nil {
				done = make(chan struct{})
				creating.Add(1)
				go func(done chan struct{}) {
					defer creating.Done()
					defer close(done)
					ok.Store(e.rewatch(wctx, e.seenRev.Load()+1))
				}(done)
			}
		}
		prev = last
	}
}

// bridge delivers the revisions after the last one delivered, up to last,
// read from the bucket's stream. It stops at the first it cannot read
// (a replica not caught up yet, a dying server): the next check goes on
// from there.
func (e *Executor) bridge(wctx context.Context, last uint64) {
	prefix := "$KV." + e.opts.Setup.Bucket + "."
	deadline := time.Now().Add(watchCheck)
	for n := 0; n < bridgeMax && time.Now().Before(deadline); n++ {
		seq := e.seenRev.Load() + 1
		if seq > last {
			return
		}
		ctx, cancel := context.WithTimeout(wctx, watchCheck)
		m, err := e.kvStream.GetMsg(ctx, seq)
		cancel()
		if err != nil {
			e.logger.Debug("cannot read a result from the bucket", "revision", seq, "error", err)
			return
		}
		if op := m.Header.Get("KV-Operation"); op == "" && len(m.Subject) > len(prefix) {
			e.deliver(m.Subject[len(prefix):], m.Data)
		}
		e.noteRev(seq)
	}
}

// rewatch replaces the watcher by one that starts at revision from, and
// reports whether it did.
func (e *Executor) rewatch(wctx context.Context, from uint64) bool {
	// The watch lives until teardown (wctx).
	w, err := e.obj.kv.WatchAll(wctx, jetstream.ResumeFromRevision(from))
	if err != nil {
		e.logger.Warn("the result watcher cannot be replaced yet", "error", err)
		return false
	}
	e.mu.Lock()
	if e.torn {
		e.mu.Unlock()
		_ = w.Stop()
		return false
	}
	old := e.watcher
	e.watcher = w
	e.mu.Unlock()
	e.logger.Warn("the result watcher was replaced", "from revision", from)
	select {
	case e.watchSwap <- struct{}{}:
	default:
	}
	if err := old.Stop(); err != nil {
		e.logger.Debug("stopping the stalled watcher", "error", err)
	}
	return true
}

// Server returns the in-process server the executor is connected to (the
// one in Options), or nil when it is connected to a URL. Workers in the
// same process connect to it with Connection.Server.
func (e *Executor) Server() Server { return e.server }

// ClientURL returns the URL that worker processes connect to: the
// Options' URL, or the in-process server's when it listens, or "" when
// workers can only connect in process (through Server).
func (e *Executor) ClientURL() string {
	if e.opts.URL != "" {
		return e.opts.URL
	}
	if e.server != nil {
		return e.server.ClientURL()
	}
	return ""
}

// Enforcement returns the enforcement declared in Options: the workers'.
func (e *Executor) Enforcement() executor.Enforcement { return e.opts.Enforcement }

// pending is one accepted call waiting for its result.
type pending struct {
	key     string
	call    executor.Call // Handler, RunID, Attempt, Limit, Grace, Logger
	promise executor.Promise
	msg     *nats.Msg // as published, for retries and to match acks
	next    *pending  // the next call with the same key
	stop    func() bool

	firstPub time.Time // first publish, bounds retries
	retryAt  time.Time // zero unless a retry is scheduled
	backoff  time.Duration
	seq      uint64 // stream sequence, once acknowledged

	// a timer: the backstop once the call started, or the end of the
	// wait for log lines once its result arrived
	when     time.Time
	heapIdx  int // -1 when not in the heap
	started  time.Time
	parked   bool              // a result is waiting for its log lines
	want     envelope.Result   // that result
	logLines map[uint64]uint64 // lines received per delivery
	done     bool              // removed from the map
	logQ     []envelope.Event  // log lines not yet replayed
	logging  bool              // a replay goroutine drains logQ

	// A cancelled call of a hard submitter that a worker runs waits for
	// the worker's report that its executor returned it (the process is
	// dead) before its Future completes with verdict.
	stopping bool
	verdict  error
	// collected (Collect): its result may be one that was recorded for
	// another submitter, whose log lines went there; it waits for none.
	collected bool
	// lastLook is when the backstop fired: the bucket is read, and the
	// timeout written create-if-absent, before a timeout is declared.
	lastLook time.Time
}

// Submit publishes call for a worker and returns its Future. When
// MaxPending submissions await the server's acknowledgement it waits for
// room while ctx allows, and fails with exactly ctx.Err() if ctx ends
// first, or with executor.ErrClosed if Shutdown begins. It fails with
// executor.ErrClosed after Shutdown, with an error for a Call without a
// Handler, and with the client's error when the connection is closed. A context that has already ended gives a
// Future with an *executor.CanceledError and nothing is published; an
// input the handler cannot encode, or whose message is over the server's
// maximum payload, gives a Future with its *executor.InputError.
//
// A call with a RunID is deduplicated by its executor.Call.ID within the
// dedup window; a call without one never is (see the package doc).
//
// Cancelling ctx later tells the workers to cancel the call, records the
// cancellation as the call's result, removes the call from the stream if
// it is still queued, and completes the Future with an
// *executor.CanceledError: at once, or with Hard declared and the call
// reported started, once its worker reports that the call stopped (at
// most the call's grace and TimeoutMargin later).
func (e *Executor) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	return e.submit(ctx, call, true, false)
}

// TrySubmit is Submit without the wait: when MaxPending submissions await
// the server's acknowledgement it fails at once with
// executor.ErrQueueFull and nothing is published.
func (e *Executor) TrySubmit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	return e.submit(ctx, call, false, false)
}

// submit publishes call; again (Collect) looks for its result first.
func (e *Executor) submit(ctx context.Context, call executor.Call, wait, again bool) (*executor.Future, error) {
	if call.Handler == nil {
		return nil, errors.New("executor/cluster: Submit with a nil Handler")
	}
	if e.closed.Load() {
		return nil, executor.ErrClosed
	}
	if ctx.Err() != nil {
		e.stats.Submitted.Add(1)
		err := executor.NewCanceledError(call.Name(), ctx)
		e.stats.Ended(err)
		return executor.Completed(nil, err), nil
	}
	e.stats.Submitted.Add(1)
	data, err := call.Handler.EncodeInput(call.Input)
	if err != nil {
		e.stats.Ended(err)
		return executor.Completed(nil, err), nil
	}
	id := e.callID(&call)
	ident := call.Identity()
	p := &pending{
		key:       envelope.Key(id),
		call:      call,
		promise:   executor.NewPromise(),
		heapIdx:   -1,
		collected: again,
	}
	p.call.Input = nil // not needed any more; do not keep it alive
	hc := envelope.Call{
		Key: p.key, Task: ident.Task, Run: ident.RunID, Attempt: ident.Attempt,
		Limit: call.Limit, Grace: call.Grace, Log: call.Logger != nil,
		Hard: e.opts.Enforcement == executor.Hard, Timed: call.Trace != nil, Again: again,
		TraceParent: call.TraceParent(), TraceState: call.TraceState(),
	}
	if call.Limit > 0 || call.Logger != nil || hc.Hard || hc.Timed {
		hc.Reply = e.events
	}
	p.msg = &nats.Msg{
		Subject: e.opts.Setup.callSubject(),
		Data:    envelope.AppendCall(make([]byte, 0, 64+len(data)), hc, data),
		Header:  nats.Header{envelope.HeaderMsgID: []string{id}},
	}
	if limit := e.conn.nc.MaxPayload() - headerBudget; int64(len(p.msg.Data)) > limit {
		err := &executor.InputError{Task: call.Name(), Type: call.Handler.InputType().String(),
			Err: fmt.Errorf("the call's message is %d bytes, over the %d bytes the NATS server takes", len(p.msg.Data), limit)}
		e.stats.Ended(err)
		return executor.Completed(nil, err), nil
	}
	if err := e.takeRoom(ctx, wait); err != nil {
		e.stats.Submitted.Add(^uint64(0))
		return nil, err
	}

	e.mu.Lock()
	if e.closed.Load() { // Shutdown began meanwhile
		e.mu.Unlock()
		e.giveRoom()
		e.stats.Submitted.Add(^uint64(0))
		return nil, executor.ErrClosed
	}
	p.next = e.pending[p.key]
	e.pending[p.key] = p
	e.inflight++
	e.stats.Running.Add(1)
	p.firstPub = time.Now()
	if ctx.Done() != nil {
		// Under the lock: whoever later finds p in the map sees stop.
		p.stop = context.AfterFunc(ctx, func() { e.cancel(p, ctx) })
	}
	e.mu.Unlock()

	if ctx.Err() != nil {
		e.giveRoom()
		return p.promise.Future(), nil // cancelled already: nothing to publish
	}
	if again && e.collected(ctx, p) {
		e.giveRoom()
		return p.promise.Future(), nil
	}
	if _, err := e.js.PublishMsgAsync(p.msg); err != nil {
		e.giveRoom()
		e.mu.Lock()
		removed := e.removeLocked(p)
		e.mu.Unlock()
		if removed {
			if p.stop != nil {
				p.stop()
			}
			e.stats.Submitted.Add(^uint64(0))
			e.stats.Running.Add(-1)
			e.release(p)
		}
		return nil, fmt.Errorf("executor/cluster: submit %s: %w", call.String(), err)
	}
	return p.promise.Future(), nil
}

// takeRoom takes a token of room for one publish. Without room it fails
// at once with executor.ErrQueueFull unless wait is set; with wait, it
// waits until there is room, ctx ends (it returns exactly ctx.Err()) or
// Shutdown begins (executor.ErrClosed).
func (e *Executor) takeRoom(ctx context.Context, wait bool) error {
	select {
	case e.room <- struct{}{}:
		return nil
	default:
	}
	if !wait {
		return fmt.Errorf("%w: %d submissions await the server's acknowledgement", executor.ErrQueueFull, e.opts.MaxPending)
	}
	select {
	case e.room <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.closing:
		return executor.ErrClosed
	}
}

// giveRoom returns a token taken by takeRoom.
func (e *Executor) giveRoom() { <-e.room }

// headerBudget is what a message's headers (the dedup id, the key-value
// store's expected-revision header) may take of the server's maximum
// payload; the rest is for the data.
const headerBudget = 512

// callID returns the id under which call is published and its result
// recorded. With a RunID it is call.ID() ("run/task/attempt"): the same
// attempt submitted twice within the dedup window is one call, and gets
// one result. Without a RunID nothing says two calls are the same one, so
// each gets an id of its own: "~<submitter id>.<sequence>" before
// "/task/attempt", never deduplicated against another call.
func (e *Executor) callID(call *executor.Call) string {
	if call.RunID != "" {
		return call.ID()
	}
	return "~" + e.id + "." + strconv.FormatUint(e.seq.Add(1), 36) + call.ID()
}

// removeLocked takes p out of the map and the timers and reports whether
// it was still there: whoever removes a call completes it. e.mu is held.
func (e *Executor) removeLocked(p *pending) bool {
	if p.done {
		return false
	}
	p.done = true
	switch head := e.pending[p.key]; {
	case head == p && p.next == nil:
		delete(e.pending, p.key)
	case head == p:
		e.pending[p.key] = p.next
	default:
		for q := head; q != nil; q = q.next {
			if q.next == p {
				q.next = p.next
				break
			}
		}
	}
	if p.heapIdx >= 0 {
		heap.Remove(&e.timers, p.heapIdx)
	}
	if !p.retryAt.IsZero() {
		e.retries = slices.DeleteFunc(e.retries, func(q *pending) bool { return q == p })
		p.retryAt = time.Time{}
	}
	return true
}

// complete completes p's future and counts the outcome. The caller has
// removed p (removeLocked returned true).
func (e *Executor) complete(p *pending, v any, err error, worker string) {
	if p.stop != nil {
		p.stop()
	}
	// Count first: whoever the future wakes sees the counters updated.
	e.stats.Ended(err)
	e.stats.Running.Add(-1)
	if worker != "" {
		p.promise.SetWorker(worker)
	}
	p.promise.SetStarted(p.started) // zero (nothing) if the worker's Started did not arrive
	// Completing runs the caller's OnDone callbacks: on a goroutine of its
	// own, so that a slow one stalls neither the result watcher nor a NATS
	// callback, and with them every other call. Shutdown owns it: it waits
	// for release.
	go func() {
		p.promise.Complete(v, err)
		e.release(p)
	}()
}

// release ends p's part in inflight.
func (e *Executor) release(p *pending) {
	e.mu.Lock()
	e.inflight--
	if e.inflight == 0 && e.idle != nil {
		close(e.idle)
		e.idle = nil
	}
	e.mu.Unlock()
}

// cancel runs when a call's context ends before its result arrives. With
// Hard declared, a call that a worker reported started is answered only
// once that worker reports that its executor returned the call (so the
// process group is dead), or after the call's grace and TimeoutMargin
// without a report; any other call is answered at once.
func (e *Executor) cancel(p *pending, ctx context.Context) {
	err := executor.NewCanceledError(p.call.Name(), ctx)
	e.mu.Lock()
	if p.done || p.stopping {
		e.mu.Unlock()
		return
	}
	if e.opts.Enforcement == executor.Hard && !p.started.IsZero() && !p.parked {
		p.stopping, p.verdict = true, err
		if p.heapIdx >= 0 {
			heap.Remove(&e.timers, p.heapIdx)
		}
		p.lastLook = time.Time{}
		p.when = time.Now().Add(max(p.call.Grace, 0) + e.opts.TimeoutMargin)
		e.pushLocked(p)
		e.verdictLocked(p, err)
		e.mu.Unlock()
		return
	}
	e.removeLocked(p)
	e.verdictLocked(p, err)
	e.mu.Unlock()
	e.complete(p, nil, err, "")
}

// verdictLocked queues what follows a verdict of the submitter (a
// cancellation, a timeout of its own): the verdict is written as the
// call's result (create-if-absent, so a worker's result written first
// stands and a later one is refused), the workers are told to stop the
// call, and its message is removed if still queued. e.mu is held, so
// Shutdown sees the job.
func (e *Executor) verdictLocked(p *pending, verdict error) {
	e.jobLocked(func(ctx context.Context) {
		// The verdict first: the worker answers a cancellation with a
		// result of its own, which must not be the one recorded.
		writeFailure(ctx, e.obj.kv, p.key, verdict, 0, e.logger)
		e.stopCall(ctx, p)
	})
}

// stopCall tells the workers to stop p's call and removes its message
// from the stream if it is still queued.
func (e *Executor) stopCall(ctx context.Context, p *pending) {
	e.mu.Lock()
	seq := p.seq
	e.mu.Unlock()
	if err := e.conn.nc.Publish(e.opts.Setup.cancelSubject(), []byte(p.key)); err != nil {
		e.logger.Debug("cannot send a cancellation", "key", p.key, "error", err)
	}
	if seq > 0 {
		if err := e.obj.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			e.logger.Debug("cannot remove a cancelled call from the stream", "seq", seq, "error", err)
		}
	}
}

// lastLook runs when p's backstop fired: a result recorded by then wins
// (the watcher may have missed it, for example while it was re-created
// after a server failed), so the timeout is written create-if-absent and
// only declared if it is the call's recorded result. While the bucket
// cannot be written, it looks again every second, for up to another
// TimeoutMargin, and then declares the timeout without a record.
func (e *Executor) lastLook(ctx context.Context, p *pending) {
	e.mu.Lock()
	at := p.lastLook
	e.mu.Unlock()
	verdict := e.backstop(p, at)
	_, err := e.obj.kv.Create(ctx, p.key, failureRecord(verdict, 0, e.logger))
	if errors.Is(err, jetstream.ErrKeyExists) {
		entry, gerr := e.obj.kv.Get(ctx, p.key)
		if gerr == nil {
			e.deliver(p.key, entry.Value())
			// The record may be this timeout itself, written by an
			// earlier try whose answer was lost: the workers must still
			// be told to stop the call (harmless if it has finished).
			e.stopCall(ctx, p)
			return
		}
		err = gerr
	}
	if err != nil && time.Since(at) < e.opts.TimeoutMargin {
		e.logger.Debug("cannot record a timeout yet; looking again", "call", p.call.String(), "error", err)
		e.mu.Lock()
		if !p.done {
			p.when = time.Now().Add(time.Second)
			e.pushLocked(p)
		}
		e.mu.Unlock()
		return
	}
	// The timeout is the call's verdict (recorded, or not recordable):
	// the workers are told to stop it whoever completes the future (the
	// watcher may deliver the record before Create returns).
	e.stopCall(ctx, p)
	e.mu.Lock()
	removed := e.removeLocked(p)
	e.mu.Unlock()
	if !removed {
		return
	}
	e.logger.Warn("no result by the call's limit, grace, ack wait and margin", "call", p.call.String(), "started", p.started)
	e.complete(p, nil, verdict, "")
}

// jobLocked queues work for the janitor; e.mu is held.
func (e *Executor) jobLocked(job func(context.Context)) {
	e.jobs = append(e.jobs, job)
	e.wake()
}

// wake makes the janitor look at its work again.
func (e *Executor) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// writeFailure records err as the result under key, unless a result is
// already there.
func writeFailure(ctx context.Context, kv jetstream.KeyValue, key string, err error, delivery uint64, logger hclog.Logger) {
	rec := failureRecord(err, delivery, logger)
	if _, cerr := kv.Create(ctx, key, rec); cerr != nil && !errors.Is(cerr, jetstream.ErrKeyExists) {
		logger.Warn("cannot record a call's failure", "key", key, "error", cerr)
	}
}

// failureRecord is the result record of a verdict err.
func failureRecord(err error, delivery uint64, logger hclog.Logger) []byte {
	payload, jerr := json.Marshal(wire.EncodeError(err))
	if jerr != nil {
		logger.Error("cannot encode an error", "error", jerr)
		payload, _ = json.Marshal(wire.EncodeError(errors.New(err.Error())))
	}
	return envelope.AppendResult(nil, envelope.Result{Kind: envelope.Failure, Delivery: delivery, Payload: payload})
}

// onPubAck runs when the server acknowledges a published call.
func (e *Executor) onPubAck(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	e.giveRoom()
	key := envelope.Key(m.Header.Get(envelope.HeaderMsgID))
	e.mu.Lock()
	defer e.mu.Unlock()
	for p := e.pending[key]; p != nil; p = p.next {
		if p.msg == m {
			p.seq = ack.Sequence
		}
	}
	if ack.Duplicate && e.pending[key] != nil {
		// The same call was submitted before, within the dedup window: it
		// was not queued again. Its result may already be in the bucket,
		// written before the watcher could see it for this call.
		e.jobLocked(func(ctx context.Context) {
			entry, err := e.obj.kv.Get(ctx, key)
			if err != nil {
				if !errors.Is(err, jetstream.ErrKeyNotFound) {
					e.logger.Warn("cannot read the result of a re-submitted call", "key", key, "error", err)
				}
				return
			}
			e.deliver(key, entry.Value())
		})
	}
}

// errNoRoom is why a publish was not repeated yet: MaxPending others
// await the server's answer.
var errNoRoom = errors.New("executor/cluster: no room to publish again yet")

// retryable reports whether a failed publish may be repeated.
func retryable(err error) bool {
	return errors.Is(err, errNoRoom) || errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrDisconnected)
}

// onPubErr runs when a published call was not acknowledged.
func (e *Executor) onPubErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	e.giveRoom()
	e.failedPub(m, err)
}

// failedPub schedules a failed publish of m again, or fails its call.
func (e *Executor) failedPub(m *nats.Msg, err error) {
	key := envelope.Key(m.Header.Get(envelope.HeaderMsgID))
	now := time.Now()
	e.mu.Lock()
	var p *pending
	for q := e.pending[key]; q != nil; q = q.next {
		if q.msg == m {
			p = q
		}
	}
	if p == nil || p.done {
		e.mu.Unlock()
		return
	}
	if retryable(err) && now.Sub(p.firstPub) < e.opts.Setup.DedupWindow/2 {
		p.backoff = min(max(2*p.backoff, 50*time.Millisecond), 2*time.Second)
		p.retryAt = now.Add(p.backoff)
		e.retries = append(e.retries, p)
		backoff := p.backoff
		e.wake() // to set its timer
		e.mu.Unlock()
		e.logger.Debug("repeating a submission", "call", p.call.String(), "in", backoff, "error", err)
		return
	}
	e.removeLocked(p)
	e.mu.Unlock()
	e.complete(p, nil, fmt.Errorf("executor/cluster: task %q: submit: %w", p.call.Name(), err), "")
}

// dispatch completes calls as their results arrive in the bucket.
func (e *Executor) dispatch() {
	defer close(e.watchDone)
	for {
		e.mu.Lock()
		w, torn := e.watcher, e.torn
		e.mu.Unlock()
		for entry := range w.Updates() {
			if entry == nil {
				continue
			}
			e.noteRev(entry.Revision())
			if entry.Operation() == jetstream.KeyValuePut {
				e.deliver(entry.Key(), entry.Value())
			}
		}
		// Stopped: replaced by the watchdog, or at teardown.
		e.mu.Lock()
		swapped := e.watcher != w
		torn = torn || e.torn
		e.mu.Unlock()
		if swapped {
			continue
		}
		if torn {
			return
		}
		select { // the watcher ended by itself: wait for a new one
		case <-e.watchSwap:
		case <-e.dogDone:
			return
		}
	}
}

// deliver completes the calls waiting under key with the record value,
// and then lets the bucket forget the record sooner (Setup.TakenTTL) if
// it completed or parked any.
func (e *Executor) deliver(key string, value []byte) {
	rec, derr := envelope.DecodeResult(value)
	var ready, stopped []*pending
	taken := false // the record completes or parks a call
	e.mu.Lock()
	for p := e.pending[key]; p != nil; p = p.next {
		if p.stopping {
			// Only a worker's result says its executor returned the
			// call; the submitter's own verdict does not.
			if derr == nil && rec.Worker != "" {
				stopped = append(stopped, p)
			}
			continue
		}
		if derr == nil && p.call.Logger != nil && !p.collected && p.logLines[rec.Delivery] < rec.Logs {
			if !p.parked {
				taken = true
				p.parked, p.want = true, rec
				if p.heapIdx >= 0 {
					heap.Remove(&e.timers, p.heapIdx)
				}
				p.when = time.Now().Add(logWait)
				e.pushLocked(p)
			}
			continue
		}
		ready = append(ready, p)
	}
	for _, p := range ready {
		e.removeLocked(p)
	}
	for _, p := range stopped {
		e.removeLocked(p)
	}
	e.mu.Unlock()
	for _, p := range ready {
		e.finish(p, rec, derr)
	}
	for _, p := range stopped {
		e.complete(p, nil, p.verdict, "")
	}
	if taken || len(ready) > 0 || len(stopped) > 0 {
		e.forget(key, value)
	}
}

// finish completes p with a decoded result record.
func (e *Executor) finish(p *pending, rec envelope.Result, derr error) {
	task := p.call.Name()
	if derr != nil {
		e.complete(p, nil, &executor.CrashError{Task: task, Reason: "malformed result record: " + derr.Error()}, "")
		return
	}
	if rec.Delivery > 0 {
		p.promise.SetDeliveries(int(min(rec.Delivery, math.MaxInt32)))
	}
	if p.started.IsZero() && rec.Ran > 0 {
		// The result came before the worker's Started event: the start
		// by the run time the worker measured (p is removed: ours alone).
		p.started = time.Now().Add(-rec.Ran)
	}
	switch rec.Kind {
	case envelope.Output:
		v, err := p.call.Handler.DecodeOutput(rec.Payload)
		e.complete(p, v, err, rec.Worker)
	default:
		var w wire.Error
		if err := json.Unmarshal(rec.Payload, &w); err != nil {
			e.complete(p, nil, &executor.CrashError{Task: task, Reason: "malformed error record: " + err.Error()}, rec.Worker)
			return
		}
		e.complete(p, nil, w.Decode(task), rec.Worker)
	}
}

// pushLocked adds p to the timers; e.mu is held.
func (e *Executor) pushLocked(p *pending) {
	first := e.timers.Len() == 0 || p.when.Before(e.timers[0].when)
	heap.Push(&e.timers, p)
	if first {
		e.wake()
	}
}

// onEvent handles a worker's event: a call started, or a log line.
func (e *Executor) onEvent(m *nats.Msg) {
	ev, err := envelope.DecodeEvent(m.Data)
	if err != nil {
		e.logger.Debug("malformed event", "error", err)
		return
	}
	switch ev.Kind {
	case envelope.Started:
		now := time.Now()
		e.mu.Lock()
		for p := e.pending[ev.Key]; p != nil; p = p.next {
			if p.parked || p.stopping || !p.lastLook.IsZero() {
				continue
			}
			p.started = now
			if p.call.Limit <= 0 {
				continue
			}
			if p.heapIdx >= 0 {
				heap.Remove(&e.timers, p.heapIdx)
			}
			// Past the limit and grace, a dead worker's call is delivered
			// again within the ack wait; this delivery's Started moves
			// the backstop, so it never fires before a redelivery could.
			p.when = now.Add(p.call.Limit + max(p.call.Grace, 0) + e.ackWait + e.opts.TimeoutMargin)
			e.pushLocked(p)
		}
		e.mu.Unlock()
	case envelope.Stopped:
		var stopped []*pending
		e.mu.Lock()
		for p := e.pending[ev.Key]; p != nil; p = p.next {
			if p.stopping {
				stopped = append(stopped, p)
			}
		}
		for _, p := range stopped {
			e.removeLocked(p)
		}
		e.mu.Unlock()
		for _, p := range stopped {
			e.complete(p, nil, p.verdict, "")
		}
	case envelope.Log:
		// Replayed off this callback, in order, by one goroutine per
		// call: a slow Logger delays its own call's lines only.
		e.mu.Lock()
		for p := e.pending[ev.Key]; p != nil; p = p.next {
			if p.call.Logger == nil {
				continue
			}
			p.logQ = append(p.logQ, ev)
			if !p.logging {
				p.logging = true
				e.replays.Add(1)
				go e.replay(p)
			}
		}
		e.mu.Unlock()
	}
}

// replay writes p's queued log lines to its Logger until none is left.
func (e *Executor) replay(p *pending) {
	defer e.replays.Done()
	for {
		e.mu.Lock()
		if len(p.logQ) == 0 {
			p.logging = false
			e.mu.Unlock()
			return
		}
		ev := p.logQ[0]
		p.logQ = p.logQ[1:]
		e.mu.Unlock()
		wire.ReplayLog(p.call.Logger, ev.Payload)
		// Counted once written: a result that waits for this line
		// completes its future only after the line is in the logger.
		e.mu.Lock()
		if p.logLines == nil {
			p.logLines = make(map[uint64]uint64, 1)
		}
		p.logLines[ev.Delivery]++
		ready := !p.done && p.parked && p.want.Delivery == ev.Delivery && p.logLines[ev.Delivery] >= p.want.Logs
		if ready {
			e.removeLocked(p)
		}
		e.mu.Unlock()
		if ready {
			e.finish(p, p.want, nil)
		}
	}
}

// advisory is the part of JetStream's max-deliveries advisory we use.
type advisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// onAdvisory handles a call whose deliveries are exhausted.
func (e *Executor) onAdvisory(m *nats.Msg) {
	var a advisory
	if err := json.Unmarshal(m.Data, &a); err != nil {
		e.logger.Debug("malformed advisory", "error", err)
		return
	}
	e.mu.Lock()
	e.jobLocked(func(ctx context.Context) {
		exhausted(ctx, e.obj, a, e.logger)
	})
	e.mu.Unlock()
}

// exhausted records a failure for a call that JetStream will not deliver
// again and removes its message. Submitters and workers all do it when
// they see the advisory; the result is written create-if-absent, so they
// agree, and a deleted message is simply not found by the others.
func exhausted(ctx context.Context, obj objects, a advisory, logger hclog.Logger) {
	msg, err := obj.stream.GetMsg(ctx, a.StreamSeq)
	if err != nil {
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			logger.Warn("cannot read a call whose deliveries are exhausted", "seq", a.StreamSeq, "error", err)
		}
		return
	}
	hc, _, _ := envelope.DecodeCall(msg.Data)
	if hc.Key != "" {
		err := &executor.CrashError{Task: hc.Task, Reason: fmt.Sprintf(
			"delivered %d times and never finished: each worker died, stalled or lost its connection before recording a result",
			a.Deliveries)}
		writeFailure(ctx, obj.kv, hc.Key, err, a.Deliveries, logger)
	}
	switch err := obj.stream.DeleteMsg(ctx, a.StreamSeq); {
	case err == nil: // whoever removes it tells, once
		logger.Warn("call failed: deliveries exhausted", "task", hc.Task, "run", hc.Run, "attempt", hc.Attempt,
			"deliveries", a.Deliveries, "seq", a.StreamSeq)
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		logger.Warn("cannot remove a call whose deliveries are exhausted", "seq", a.StreamSeq, "error", err)
	}
}

// janitor runs the executor's background work: timers (backstop timeouts,
// waits for log lines), publish retries, and jobs (verdicts, reads).
func (e *Executor) janitor() {
	defer close(e.janitorEnd)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var expired, retry []*pending
		e.mu.Lock()
		jobs := e.jobs
		e.jobs = nil
		for e.timers.Len() > 0 && !e.timers[0].when.After(now) {
			p := heap.Pop(&e.timers).(*pending)
			expired = append(expired, p)
		}
		e.retries = slices.DeleteFunc(e.retries, func(p *pending) bool {
			if p.retryAt.After(now) {
				return false
			}
			p.retryAt = time.Time{}
			retry = append(retry, p)
			return true
		})
		var timeouts []*pending
		for _, p := range expired {
			if p.parked || p.stopping {
				e.removeLocked(p)
				timeouts = append(timeouts, p)
				continue
			}
			if p.lastLook.IsZero() {
				p.lastLook = now
			}
			e.jobLocked(func(ctx context.Context) { e.lastLook(ctx, p) })
		}
		var next time.Time
		if e.timers.Len() > 0 {
			next = e.timers[0].when
		}
		for _, p := range e.retries {
			if next.IsZero() || p.retryAt.Before(next) {
				next = p.retryAt
			}
		}
		stop := e.stopping && len(jobs) == 0 && len(e.jobs) == 0 && len(timeouts) == 0
		e.mu.Unlock()

		for _, p := range timeouts {
			if p.stopping {
				e.logger.Warn("no report that a cancelled call stopped on its worker", "call", p.call.String())
				e.complete(p, nil, p.verdict, "")
				continue
			}
			e.logger.Debug("some log lines of a call did not arrive", "call", p.call.String())
			e.finish(p, p.want, nil)
		}
		for _, p := range retry {
			if e.takeRoom(context.Background(), false) != nil {
				e.failedPub(p.msg, errNoRoom) // again, a little later
				continue
			}
			if _, err := e.js.PublishMsgAsync(p.msg); err != nil {
				e.giveRoom()
				e.failedPub(p.msg, err)
			}
		}
		for _, job := range jobs {
			ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
			job(ctx)
			cancel()
		}
		if len(jobs) > 0 || len(timeouts) > 0 || len(retry) > 0 {
			continue
		}
		if stop {
			return
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-e.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// backstop is the executor's own timeout for a call whose result did not
// arrive by its limit, grace, ack wait and margin after it started. It is
// Soft and not Stopped whatever the declared enforcement: the submitter
// has heard nothing from the worker and cannot tell whether the work
// still runs.
func (e *Executor) backstop(p *pending, now time.Time) *executor.TimeoutError {
	return &executor.TimeoutError{
		Task:        p.call.Name(),
		Limit:       p.call.Limit,
		Elapsed:     now.Sub(p.started),
		Enforcement: executor.Soft,
	}
}

// Shutdown stops intake (Submit fails with executor.ErrClosed) and waits
// for every accepted call's result. If ctx ends first it returns an
// *executor.ShutdownError naming those calls; they stay pending and a
// later Shutdown waits for them again. Once no call is pending it stops
// watching, closes the connection and, with Options.StopServer, stops the
// in-process server: workers connected to that server lose their
// connection, so shut them down first. Calls that
// workers still run for cancelled or timed-out callers are the workers'.
func (e *Executor) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed.Load() {
		close(e.closing)
	}
	e.closed.Store(true)
	var idle chan struct{}
	if e.inflight > 0 {
		if e.idle == nil {
			e.idle = make(chan struct{})
		}
		idle = e.idle
	}
	e.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			e.mu.Lock()
			var running []string
			for _, head := range e.pending {
				for p := head; p != nil; p = p.next {
					running = append(running, p.call.String())
				}
			}
			e.mu.Unlock()
			sort.Strings(running)
			return &executor.ShutdownError{Running: running, Err: ctx.Err()}
		}
	}
	e.teardown(ctx)
	return nil
}

// teardown releases what start acquired; it is safe on a half-started
// executor and runs once.
func (e *Executor) teardown(ctx context.Context) {
	e.mu.Lock()
	if e.torn {
		e.mu.Unlock()
		return
	}
	e.torn = true
	e.stopping = true
	started := e.watcher != nil
	e.wake()
	e.mu.Unlock()
	if started {
		<-e.janitorEnd
		// The watch context first: it ends a watcher being created.
		e.stopWatch()
		close(e.dogStop)
		<-e.dogDone
		e.mu.Lock()
		w := e.watcher
		e.mu.Unlock()
		if err := w.Stop(); err != nil {
			e.logger.Debug("stopping the watcher", "error", err)
		}
	}
	if e.stopWatch != nil {
		e.stopWatch()
	}
	// The rewrites still waiting go before the connection closes.
	if batch := e.forgets.close(); len(batch) > 0 && e.conn != nil {
		e.sendForgets(batch)
	}
	if e.conn != nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		e.conn.close(cctx)
		cancel()
	}
	if started {
		<-e.watchDone
	}
	e.replays.Wait() // after the connection closed, none starts
	if s, ok := e.server.(interface{ Shutdown() }); ok && e.owned {
		s.Shutdown()
	}
}

// Stats returns a snapshot of the counters. Running is the number of
// calls accepted and not yet answered: queued or running on a worker.
// Abandoned is always zero here: abandoned work lives in the workers'
// executors, whose Stats count it.
func (e *Executor) Stats() executor.Stats {
	return e.stats.Snapshot()
}

// timerHeap orders pending calls by when.
type timerHeap []*pending

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *timerHeap) Push(x any) {
	p := x.(*pending)
	p.heapIdx = len(*h)
	*h = append(*h, p)
}
func (h *timerHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.heapIdx = -1
	return p
}
