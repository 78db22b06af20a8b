package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/store"
)

// Options configure a Set. The zero value is a Set in this process's
// memory.
type Options struct {
	// Store, when set, keeps the limits in a run store shared by several
	// processes (store/sqlite on one machine, store/postgres on several),
	// so that they hold across all of them: concurrency slots are leases
	// in the store renewed every Heartbeat, rates are token buckets in the
	// store. Every process must define the same limits. Nil means in
	// memory: the limits hold in this process only.
	Store store.Limiter

	// Owner names this process in the store's slot leases. Empty means
	// hostname/pid/random. Only with Store.
	Owner string

	// Heartbeat is how often this process renews its slots' leases, which
	// last 1.75 heartbeats: the slots of a process that dies are free
	// again within 1.75 heartbeats, and taken by a waiting process within
	// two (a renewal has three quarters of a heartbeat to reach the store).
	// Zero means 1 second. Only with Store.
	Heartbeat time.Duration

	// Poll is how often a process with waiting attempts looks for slots
	// that other processes gave back. Zero means 50 milliseconds; it is
	// never more than Heartbeat/8. Only with Store.
	Poll time.Duration

	// Logger receives the store's failures (named "limit"). Nil means no
	// logging.
	Logger hclog.Logger
}

// Set is a set of limits and their state: who holds which slots and who
// waits. One Set is shared by every flow run that should be bounded
// together (flow.RunOptions.Limits). A Set is safe for concurrent use.
// Close it when the runs that use it are done.
type Set struct {
	limits map[string]*Limit
	stats  map[string]*counters
	names  []string
	st     store.Limiter
	owner  string
	beat   time.Duration
	ttl    time.Duration
	poll   time.Duration
	log    hclog.Logger

	mu     sync.Mutex
	queues map[part]*queue
	closed atomic.Bool
	// bg is the store calls' context, for the Set's life: Close cancels it.
	bg     context.Context
	stopBG context.CancelFunc
	quit   chan struct{}
	wg     sync.WaitGroup
}

// leaseSure reports whether a slot this process holds is surely still
// leased to it for a while (half a heartbeat at least), so that it can be
// handed on in memory before the store hears of it: since is when the
// store transaction that last claimed it or handed it on (and found it
// still ours) began, 0 if none is known. A renewal does not count: it
// renews the slots still ours, and does not say which ones a late
// renewal found taken by another process.
func (s *Set) leaseSure(since int64) bool {
	return since != 0 && time.Now().UnixNano() < since+int64(s.ttl)-int64(s.beat/2)
}

// New returns a Set of limits. A limit without a name, two limits with one
// name, a limit of zero (neither Concurrency nor Rate: ErrZero), a
// negative bound and a rate without a period are each a *LimitError.
func New(opts Options, limits ...Limit) (*Set, error) {
	s := &Set{limits: map[string]*Limit{}, stats: map[string]*counters{}, queues: map[part]*queue{},
		st: opts.Store, owner: opts.Owner, log: opts.Logger, quit: make(chan struct{})}
	for _, l := range limits {
		if err := l.check(); err != nil {
			return nil, err
		}
		if s.limits[l.Name] != nil {
			return nil, &LimitError{Limit: l.Name, Err: fmt.Errorf("defined twice")}
		}
		s.limits[l.Name] = &l
		s.stats[l.Name] = &counters{}
		s.names = append(s.names, l.Name)
	}
	sort.Strings(s.names)
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.log = s.log.Named("limit")
	s.beat = opts.Heartbeat
	if s.beat <= 0 {
		s.beat = time.Second
	}
	s.ttl = s.beat * 7 / 4
	s.poll = opts.Poll
	if s.poll <= 0 {
		s.poll = 50 * time.Millisecond
	}
	s.poll = max(min(s.poll, s.beat/8), time.Microsecond)
	s.bg, s.stopBG = context.WithCancel(context.Background())
	if s.st != nil {
		if s.owner == "" {
			host, _ := os.Hostname()
			var b [4]byte
			_, _ = rand.Read(b[:])
			s.owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
		}
		s.wg.Go(s.heartbeat)
	}
	return s, nil
}

// Limit returns the limit named name, and false if the Set has none.
func (s *Set) Limit(name string) (Limit, bool) {
	l := s.limits[name]
	if l == nil {
		return Limit{}, false
	}
	return *l, true
}

// Owner returns the name this process holds the store's slots under, or
// "" for a Set in memory.
func (s *Set) Owner() string { return s.owner }

// Check returns a *UseError (ErrUnknown) for the first use that names a
// limit the Set does not define; task names the task in the error. A nil
// Set refuses every use (ErrNoSet).
func (s *Set) Check(task string, uses []Use) error {
	for _, u := range uses {
		if s == nil {
			return &UseError{Task: task, Limit: u.Limit, Err: ErrNoSet}
		}
		if s.limits[u.Limit] == nil {
			return &UseError{Task: task, Limit: u.Limit, Err: ErrUnknown}
		}
	}
	return nil
}

// Close fails every waiting attempt with ErrClosed, stops the heartbeat
// and the store polling, and waits for them. Slots held in memory are
// gone with the Set; slots held in a store expire 1.75 heartbeats after the
// last renewal (close the Set once the runs that use it have ended, and
// they have given their slots back; slots given back before Close are
// freed in the store by Close, within 5 seconds). Close is idempotent.
func (s *Set) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	qs := make([]*queue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.mu.Unlock()
	for _, q := range qs {
		q.closeAll()
	}
	if s.st != nil {
		// Slots given back just before Close go back now, not at expiry.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, q := range qs {
			q.flush(ctx)
		}
		cancel()
	}
	close(s.quit)
	s.stopBG()
	s.wg.Wait()
	return nil
}

// Hold is the limits one attempt holds. Release gives its concurrency
// slots back; rate tokens are spent and never given back.
type Hold struct {
	s        *Set
	holder   string
	parts    []part
	slots    []int
	released atomic.Bool
}

// Release gives the hold's slots back, to the next waiting attempt if
// there is one. It is idempotent, and safe on a nil Hold; it never blocks
// on a store (a store-backed slot is given back by the Set's own
// goroutine).
func (h *Hold) Release() {
	if h == nil || h.released.Swap(true) {
		return
	}
	for _, p := range h.parts {
		if !p.rate {
			h.s.stats[p.Limit].held.Add(-1)
		}
	}
	h.s.releaseParts(h.holder, h.parts, h.slots, len(h.parts))
}

// Acquire asks for the keys' limits for one attempt, named holder in the
// store (the flow package uses "<run id>/<label>#<attempt>"). Every key's
// concurrency slot is taken first, in the keys' order, then every rate
// token, so that a token is spent only when the attempt can start.
//
// When every limit can be taken at once, Acquire returns the Hold and
// never calls done. Otherwise it returns a nil Hold and where the attempt
// waits, and calls done exactly once, later, from another goroutine:
// with the Hold, or with an error once ctx ends (context.Cause(ctx)) or
// the Set is closed (ErrClosed). A wait that ends without a Hold gives
// back the slots it had taken so far, and nothing else. done must not
// block. A key naming a limit the Set does not define is a *UseError.
func (s *Set) Acquire(ctx context.Context, holder string, keys []Key, done func(*Hold, error)) (*Hold, Wait, error) {
	if s.closed.Load() {
		return nil, Wait{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, Wait{}, context.Cause(ctx)
	}
	parts := make([]part, 0, 2*len(keys))
	for _, k := range keys {
		l := s.limits[k.Limit]
		if l == nil {
			return nil, Wait{}, &UseError{Limit: k.Limit, Err: ErrUnknown}
		}
		if l.Concurrency > 0 {
			parts = append(parts, part{Key: k})
		}
	}
	for _, k := range keys {
		if s.limits[k.Limit].Rate > 0 {
			parts = append(parts, part{Key: k, rate: true})
		}
	}
	req := &request{s: s, holder: holder, parts: parts, slots: make([]int, len(parts)), done: done}
	if ctx.Done() != nil {
		req.stop = context.AfterFunc(ctx, func() { s.cancel(req, context.Cause(ctx)) })
	}
	switch st, w := s.advance(req); st {
	case granted:
		if req.stop != nil {
			req.stop()
		}
		return req.hold(), Wait{}, nil
	case queued:
		return nil, w, nil
	default:
		if req.stop != nil {
			req.stop()
		}
		req.mu.Lock()
		err := req.err
		req.mu.Unlock()
		if err == nil {
			err = context.Cause(ctx)
		}
		s.releaseParts(holder, req.parts, req.slots, req.next)
		return nil, Wait{}, err
	}
}

// request is one Acquire's progress through its parts.
type request struct {
	s      *Set
	holder string
	parts  []part
	slots  []int // per part: the store slot of a concurrency part, else -1
	next   int   // parts before next are taken (owner of the request only)
	done   func(*Hold, error)
	stop   func() bool
	since  time.Time // when it first waited
	waited bool

	mu        sync.Mutex // guards in, cancelled, err
	in        *queue     // the queue it waits in, nil in transit
	cancelled bool
	err       error
	// the queue's list
	prev, nextQ *request
}

func (r *request) hold() *Hold {
	return &Hold{s: r.s, holder: r.holder, parts: r.parts, slots: r.slots}
}

type status uint8

const (
	granted status = iota
	queued
	cancelled
)

// advance takes the request's parts from next on, as far as it can at
// once. The caller owns the request (it is in no queue).
func (s *Set) advance(req *request) (status, Wait) {
	for req.next < len(req.parts) {
		p := req.parts[req.next]
		st, slot, pos := s.queue(p).take(req)
		switch st {
		case queued: // another goroutine may own req already
			return queued, Wait{Limit: p.Limit, Key: p.Key.Key, Rate: p.rate, Position: pos}
		case cancelled:
			return cancelled, Wait{}
		}
		req.slots[req.next] = slot
		req.next++
	}
	req.mu.Lock()
	c := req.cancelled
	req.mu.Unlock()
	if c {
		return cancelled, Wait{}
	}
	for _, p := range req.parts {
		if !p.rate {
			s.stats[p.Limit].held.Add(1)
		}
		s.stats[p.Limit].granted.Add(1)
	}
	if req.waited {
		s.stats[req.parts[0].Limit].waited.Add(int64(time.Since(req.since)))
	}
	return granted, Wait{}
}

// resume goes on with a request that a queue let go: with its part next
// taken (slot; err nil), or because the Set closed (err), and tells done
// the outcome. The caller owns the request.
func (s *Set) resume(req *request, slot int, err error) {
	if err == nil {
		req.slots[req.next] = slot
		req.next++
		req.mu.Lock()
		c, cerr := req.cancelled, req.err
		req.mu.Unlock()
		if c {
			err = cerr
		} else {
			switch st, _ := s.advance(req); st {
			case queued:
				return
			case granted:
				if req.stop != nil {
					req.stop()
				}
				req.done(req.hold(), nil)
				return
			}
			req.mu.Lock()
			err = req.err
			req.mu.Unlock()
		}
	}
	if req.stop != nil {
		req.stop()
	}
	s.releaseParts(req.holder, req.parts, req.slots, req.next)
	if err == nil {
		err = ErrClosed
	}
	req.done(nil, err)
}

// cancel ends a waiting request when its ctx ends: if it is in a queue,
// it leaves it and ends here; in transit, its owner sees cancelled.
func (s *Set) cancel(req *request, err error) {
	req.mu.Lock()
	if req.cancelled {
		req.mu.Unlock()
		return
	}
	req.cancelled, req.err = true, err
	q := req.in
	req.mu.Unlock()
	if q == nil || !q.leave(req) {
		return
	}
	s.releaseParts(req.holder, req.parts, req.slots, req.next)
	req.done(nil, err)
}

// releaseParts gives back the first n parts' slots.
func (s *Set) releaseParts(holder string, parts []part, slots []int, n int) {
	for k := range n {
		p := parts[k]
		if p.rate {
			continue
		}
		s.queue(p).release(holder, slots[k])
	}
}

// queue returns p's queue, making it on first use.
func (s *Set) queue(p part) *queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[p]
	if q == nil || q.dead.Load() {
		q = &queue{s: s, p: p, lim: s.limits[p.Limit], c: s.stats[p.Limit], wake: make(chan struct{}, 1)}
		if p.rate {
			q.iv, q.burst = q.lim.interval()
		}
		s.queues[p] = q
	}
	return q
}

// retire drops a queue if it is idle (the caller holds no queue's lock), so that a Set with many keys does not keep
// them all; a queue that is needed again is made again.
func (s *Set) retire(q *queue) {
	s.mu.Lock()
	q.mu.Lock()
	if s.queues[q.p] == q && q.idle() {
		q.dead.Store(true)
		delete(s.queues, q.p)
	}
	q.mu.Unlock()
	s.mu.Unlock()
}

func (s *Set) heartbeat() {
	t := time.NewTicker(s.beat)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		_, err := s.st.RenewSlots(s.bg, s.owner, s.ttl)
		if err != nil && !s.closed.Load() {
			s.log.Warn("renewing the limits' slots failed; they expire unless a later renewal succeeds", "error", err)
		}
	}
}

// Stats are a limit's counters, for metrics and progress displays.
type Stats struct {
	Limit   string
	Held    int           // concurrency slots held now (by this process)
	Waiting int           // attempts waiting now (in this process)
	Granted uint64        // attempts that took the limit, in all
	Waits   uint64        // attempts that had to wait first, in all
	Waited  time.Duration // their total wait (counted under their first limit)
}

type counters struct {
	held, waiting atomic.Int64
	granted       atomic.Uint64
	waits         atomic.Uint64
	waited        atomic.Int64
}

// Stats returns every limit's counters, ordered by name.
func (s *Set) Stats() []Stats {
	out := make([]Stats, 0, len(s.names))
	for _, n := range s.names {
		c := s.stats[n]
		out = append(out, Stats{Limit: n, Held: int(c.held.Load()), Waiting: int(c.waiting.Load()),
			Granted: c.granted.Load(), Waits: c.waits.Load(), Waited: time.Duration(c.waited.Load())})
	}
	return out
}

// noSlot is the slot of a resume that took nothing (the Set closed).
const noSlot = -2
