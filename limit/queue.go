package limit

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowline-go/flowline/store"
)

// queue is one part's state: a key's concurrency slots or its token
// bucket, and the requests waiting for it, first come first served. In
// memory it grants at once or on a release (concurrency) or a timer
// (rate); with a store, a pump goroutine claims slots and tokens for the
// waiters, as many per store call as are waiting.
type queue struct {
	s   *Set
	p   part
	lim *Limit
	c   *counters

	mu         sync.Mutex
	dead       atomic.Bool // retired: set under s.mu and mu
	head, tail *request
	n          int // waiting
	held       int // in memory: slots held
	// in memory, rate: the bucket (GCRA), tat in Unix nanoseconds
	iv    time.Duration
	burst int
	tat   int64
	timer *time.Timer
	// with a store
	pumping bool
	wake    chan struct{}
	rel     []heldSlot // slots to give back
	// lease is, per slot this process holds, when the store transaction
	// that last claimed or handed it on began: its lease runs at least
	// until then + ttl (or the last renewal + ttl, if later).
	lease map[int]int64
}

type heldSlot struct {
	slot   int
	holder string
	next   string // handed on to this holder of this process, not freed
}

// take takes the part for req at once (granted, with the store slot or
// -1), or queues it (queued, with its position), or refuses a cancelled
// request or a closed Set (cancelled; req.err says why).
func (q *queue) take(req *request) (status, int, int) {
	q.mu.Lock()
	if q.dead.Load() {
		q.mu.Unlock()
		return q.s.queue(q.p).take(req)
	}
	req.mu.Lock()
	if req.cancelled || q.s.closed.Load() {
		if req.err == nil {
			req.err = ErrClosed
		}
		req.mu.Unlock()
		q.mu.Unlock()
		return cancelled, 0, 0
	}
	if q.s.st == nil && q.n == 0 {
		if q.p.rate {
			if q.token(time.Now()) {
				req.mu.Unlock()
				q.mu.Unlock()
				return granted, -1, 0
			}
		} else if q.held < q.lim.Concurrency {
			q.held++
			req.mu.Unlock()
			q.mu.Unlock()
			return granted, -1, 0
		}
	}
	req.in = q
	req.mu.Unlock()
	if !req.waited {
		req.waited, req.since = true, time.Now()
		q.c.waits.Add(1)
	}
	q.push(req)
	pos := q.n
	q.c.waiting.Add(1)
	switch {
	case q.s.st != nil:
		q.kick()
	case q.p.rate && q.timer == nil:
		q.schedule(time.Now())
	}
	q.mu.Unlock()
	return queued, 0, pos
}

func (q *queue) push(r *request) {
	r.prev, r.nextQ = q.tail, nil
	if q.tail != nil {
		q.tail.nextQ = r
	} else {
		q.head = r
	}
	q.tail = r
	q.n++
}

// unlink takes r out of the list (q.mu held).
func (q *queue) unlink(r *request) {
	if r.prev != nil {
		r.prev.nextQ = r.nextQ
	} else {
		q.head = r.nextQ
	}
	if r.nextQ != nil {
		r.nextQ.prev = r.prev
	} else {
		q.tail = r.prev
	}
	r.prev, r.nextQ = nil, nil
	q.n--
	q.c.waiting.Add(-1)
}

// pop takes the first waiter out, the caller owning it (q.mu held).
func (q *queue) pop() *request {
	r := q.head
	if r == nil {
		return nil
	}
	q.unlink(r)
	r.mu.Lock()
	r.in = nil
	r.mu.Unlock()
	return r
}

// leave takes a cancelled r out of the queue, and reports whether it was
// still there (then the caller owns it).
func (q *queue) leave(r *request) bool {
	q.mu.Lock()
	r.mu.Lock()
	mine := r.in == q
	if mine {
		r.in = nil
	}
	r.mu.Unlock()
	if mine {
		q.unlink(r)
	}
	idle := q.idle()
	q.mu.Unlock()
	if idle {
		q.s.retire(q)
	}
	return mine
}

// idle reports whether nothing in memory depends on the queue (q.mu held).
func (q *queue) idle() bool {
	if q.n > 0 || q.pumping || q.held > 0 || len(q.rel) > 0 || q.timer != nil {
		return false
	}
	return !q.p.rate || q.tat <= time.Now().UnixNano()
}

// release gives a concurrency slot back: to the first waiter in memory,
// or to the pump with a store.
func (q *queue) release(holder string, slot int) {
	q.mu.Lock()
	if q.s.st != nil {
		if q.s.closed.Load() {
			q.mu.Unlock()
			return
		}
		if q.n > 0 && q.s.leaseSure(q.lease[slot]) {
			// Hand the slot on to the next waiter here: the store learns of
			// the new holder in the pump's next transaction, and the slot's
			// lease is surely ours until then (see leaseSure).
			r := q.pop()
			q.rel = append(q.rel, heldSlot{slot, holder, r.holder})
			if !q.pumping {
				q.kick()
			}
			// A running pump is not woken: it records hand-ons with its
			// next transaction (at its next poll at the latest, or when a
			// waiter or a freed slot wakes it), many in one, instead of
			// one transaction per hand-on. The slot's lease does not wait
			// on it: leaseSure counts from the last transaction that
			// found the slot ours, and a poll is at most an eighth of a
			// heartbeat, a tenth of the time a hand-on stays sure.
			q.mu.Unlock()
			q.s.resume(r, slot, nil)
			return
		}
		q.rel = append(q.rel, heldSlot{slot: slot, holder: holder})
		q.kick()
		q.mu.Unlock()
		return
	}
	r := q.pop()
	if r == nil {
		q.held--
	}
	idle := q.idle()
	q.mu.Unlock()
	if r != nil {
		q.s.resume(r, -1, nil)
	} else if idle {
		q.s.retire(q)
	}
}

// closeAll fails every waiter with ErrClosed.
func (q *queue) closeAll() {
	q.mu.Lock()
	var rs []*request
	for r := q.pop(); r != nil; r = q.pop() {
		rs = append(rs, r)
	}
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
	q.mu.Unlock()
	for _, r := range rs {
		q.s.resume(r, noSlot, ErrClosed)
	}
}

// flush gives back the slots released and not yet given back to the
// store.
func (q *queue) flush(ctx context.Context) {
	q.mu.Lock()
	rel := q.rel
	q.rel = nil
	q.mu.Unlock()
	if len(rel) == 0 {
		return
	}
	// Hand-ons are recorded, not freed: their new holders hold the slots
	// until they end (then their leases run out, the heartbeat stopped).
	release := make([]store.Slot, len(rel))
	for k, h := range rel {
		release[k] = store.Slot{N: h.slot, Holder: h.holder, Next: h.next}
	}
	if _, err := q.s.st.SwapSlots(ctx, q.p.Limit, q.p.Key.Key, q.lim.Concurrency, q.s.owner, release, nil, q.s.ttl); err != nil {
		q.s.log.Warn("giving slots back at close failed; they expire", "limit", q.p.Limit, "key", q.p.Key.Key, "error", err)
	}
}

// token takes a token from the in-memory bucket if one is there.
func (q *queue) token(now time.Time) bool {
	n := now.UnixNano()
	t := max(q.tat, n)
	if t+int64(q.iv) > n+int64(q.burst)*int64(q.iv) {
		return false
	}
	q.tat = t + int64(q.iv)
	return true
}

// schedule sets the timer for the next token (q.mu held).
func (q *queue) schedule(now time.Time) {
	at := max(q.tat, now.UnixNano()) + int64(q.iv) - int64(q.burst)*int64(q.iv)
	q.timer = time.AfterFunc(time.Duration(at-now.UnixNano()), q.tick)
}

// tick grants the tokens that came to the first waiters.
func (q *queue) tick() {
	q.mu.Lock()
	q.timer = nil
	if q.s.closed.Load() {
		q.mu.Unlock()
		return
	}
	now := time.Now()
	var rs []*request
	for q.n > 0 && q.token(now) {
		rs = append(rs, q.pop())
	}
	if q.n > 0 {
		q.schedule(now)
	}
	q.mu.Unlock()
	for _, r := range rs {
		q.s.resume(r, -1, nil)
	}
}

// kick starts the pump, or wakes it (q.mu held).
func (q *queue) kick() {
	if q.pumping {
		select {
		case q.wake <- struct{}{}:
		default:
		}
		return
	}
	if q.s.closed.Load() {
		return
	}
	q.pumping = true
	if q.p.rate {
		q.s.wg.Go(q.pumpTokens)
	} else {
		q.s.wg.Go(q.pumpSlots)
	}
}

// sleep waits for d, a wake-up or the Set's close, and reports false on
// close.
func (q *queue) sleep(d time.Duration, wakeable bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	wake := q.wake
	if !wakeable {
		wake = nil
	}
	select {
	case <-t.C:
		return true
	case <-wake:
		return true
	case <-q.s.quit:
		return false
	}
}

// stopPump ends the pump (q.mu held by the caller, released here).
func (q *queue) stopPump() {
	q.pumping = false
	idle := q.idle()
	q.mu.Unlock()
	if idle {
		q.s.retire(q)
	}
}

// pumpSlots gives back released slots and claims slots in the store for
// the waiters, as many in one call as are waiting (up to the limit), until
// nobody waits; with none free it looks again every Poll, or at once when
// a slot of this process is given back.
func (q *queue) pumpSlots() {
	s, name, key := q.s, q.p.Limit, q.p.Key.Key
	var ws []*request
	var holders []string
	for {
		q.mu.Lock()
		if s.closed.Load() { // Close gives back what is left in rel
			q.stopPump()
			return
		}
		rel := q.rel
		q.rel = nil
		ws, holders = ws[:0], holders[:0]
		for r := q.head; r != nil && len(ws) < q.lim.Concurrency; r = r.nextQ {
			ws = append(ws, r)
			holders = append(holders, r.holder)
		}
		if len(rel) == 0 && len(ws) == 0 {
			q.stopPump()
			return
		}
		q.mu.Unlock()
		release := make([]store.Slot, len(rel))
		for k, h := range rel {
			release[k] = store.Slot{N: h.slot, Holder: h.holder, Next: h.next}
		}
		// Slots given back and claimed in one transaction: a process hands
		// its slots on in one round trip.
		began := time.Now().UnixNano()
		got, err := s.st.SwapSlots(s.bg, name, key, q.lim.Concurrency, s.owner, release, holders, s.ttl)
		if err != nil {
			if !s.closed.Load() {
				s.log.Warn("giving back and claiming slots failed; trying again", "limit", name, "key", key, "error", err)
			}
			q.mu.Lock()
			q.rel = append(rel, q.rel...) // gave nothing back: again, first (hand-ons in order)
			q.mu.Unlock()
			if !q.sleep(s.poll, false) {
				return
			}
			continue
		}
		q.mu.Lock()
		if q.lease == nil {
			q.lease = map[int]int64{}
		}
		lost := 0
		for k, h := range rel {
			if release[k].Expires.IsZero() {
				lost++
			}
			if h.next != "" && !release[k].Expires.IsZero() {
				q.lease[h.slot] = began
			} else {
				// Released, or lost: a slot whose lease expired and that
				// another process claimed is not ours to hand on again.
				delete(q.lease, h.slot)
			}
		}
		for _, slot := range got {
			q.lease[slot] = began
		}
		q.mu.Unlock()
		if lost > 0 && !s.closed.Load() {
			s.log.Warn("slots' leases expired while held (renewals too late) and other processes claimed them: their holders here ran beside the limit",
				"limit", name, "key", key, "slots", lost, "heartbeat", s.beat)
		}
		if len(ws) == 0 {
			continue
		}
		var ready []*request
		var readySlots []int
		q.mu.Lock()
		for k, slot := range got {
			r := ws[k]
			r.mu.Lock()
			mine := r.in == q
			if mine {
				r.in = nil
			}
			r.mu.Unlock()
			if mine {
				q.unlink(r)
				ready = append(ready, r)
				readySlots = append(readySlots, slot)
			} else { // it left meanwhile: the slot goes back
				q.rel = append(q.rel, heldSlot{slot: slot, holder: r.holder})
			}
		}
		q.mu.Unlock()
		for k, r := range ready {
			s.resume(r, readySlots[k], nil)
		}
		if len(got) == 0 && !q.sleep(s.poll, true) {
			return
		}
	}
}

// pumpTokens reserves tokens in the store's bucket for the waiters, up to
// a horizon ahead (as many in one call as are waiting), and lets each
// reserved waiter go at its token's time: the store's latency delays the
// reservations, not the starts. It reserves again while half a horizon of
// reserved tokens is left, so that the next ones are known in time.
func (q *queue) pumpTokens() {
	s, name, key := q.s, q.p.Limit, q.p.Key.Key
	horizon := max(5*s.poll, 2*q.iv)
	type due struct {
		r  *request
		at time.Time
	}
	var sched []due
	defer func() { // closed: the reserved ones fail too
		for _, d := range sched {
			s.resume(d.r, noSlot, ErrClosed)
		}
	}()
	var next time.Time
	for {
		now := time.Now()
		q.mu.Lock()
		n := q.n
		if s.closed.Load() || n == 0 && len(sched) == 0 {
			q.stopPump()
			return
		}
		q.mu.Unlock()
		if n > 0 && (len(sched) == 0 || !sched[len(sched)-1].at.After(now.Add(horizon/2))) && !now.Before(next.Add(-horizon)) {
			times, nx, err := s.st.ReserveTokens(s.bg, name, key, q.iv, q.burst, n, horizon)
			if err != nil {
				if !s.closed.Load() {
					s.log.Warn("taking rate tokens failed; trying again", "limit", name, "key", key, "error", err)
				}
				if !q.sleep(s.poll, false) {
					return
				}
				continue
			}
			next = nx
			q.mu.Lock()
			for _, at := range times {
				r := q.pop()
				if r == nil {
					break // they left meanwhile: the tokens are spent
				}
				sched = append(sched, due{r, at})
			}
			q.mu.Unlock()
		}
		now = time.Now()
		k := 0
		for k < len(sched) && !sched[k].at.After(now) {
			k++
		}
		ready := sched[:k]
		for _, d := range ready {
			s.resume(d.r, -1, nil)
		}
		sched = append(sched[:0], sched[k:]...)
		// Sleep until the next reserved token, or until it is time to
		// reserve more, whichever comes first; a new waiter wakes us.
		q.mu.Lock()
		n = q.n
		q.mu.Unlock()
		var wakeAt time.Time // when to reserve more
		if n > 0 {
			wakeAt = next.Add(-horizon)
			if len(sched) > 0 {
				wakeAt = latest(wakeAt, sched[len(sched)-1].at.Add(-horizon/2))
			}
		}
		if len(sched) > 0 && (wakeAt.IsZero() || sched[0].at.Before(wakeAt)) {
			wakeAt = sched[0].at
		}
		if wakeAt.IsZero() {
			continue // nothing reserved, nobody waits: the loop ends the pump
		}
		if d := time.Until(wakeAt); d > 0 && !q.sleep(d, true) {
			return
		}
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
