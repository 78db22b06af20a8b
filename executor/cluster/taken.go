package cluster

import (
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// forget lets the bucket drop a record this submitter has taken after
// Setup.TakenTTL instead of ResultTTL: it writes the same record again
// with a per-message TTL. The bucket keeps one revision per key, so the
// longer-lived one goes. Until the TTL ends the record answers as before
// (a re-submission, a Collect, a call delivered again all find it, and
// create-if-absent still refuses a second result); then the server
// removes it, with no marker.
//
// The write is a plain publish without a reply: nothing waits for it,
// and one that is lost leaves the record ResultTTL. It is not made
// conditional on the revision taken (a header stored with every record,
// and checked by the server): the only other writes to the key are
// other submitters' rewrites of the same record, and a result recorded
// after this one vanished (a second run, past its TakenTTL), which this
// one, the answer already given, may replace. It does nothing in a
// bucket that keeps results no longer than TakenTTL or takes no
// per-message TTLs (Setup.shortens).
//
// Rewrites are sent in batches (see forgetBatch), not one by one.
func (e *Executor) forget(key string, value []byte) {
	if e.takenHeader == nil {
		return
	}
	// The header is shared: the client only reads it.
	m := &nats.Msg{Subject: e.kvPrefix + key, Data: value, Header: e.takenHeader}
	if batch := e.forgets.add(m); batch != nil {
		e.sendForgets(batch)
	}
}

// sendForgets publishes a batch of rewrites.
func (e *Executor) sendForgets(batch []*nats.Msg) {
	for _, m := range batch {
		if err := e.conn.nc.PublishMsg(m); err != nil {
			e.logger.Debug("cannot shorten a taken result's life", "subject", m.Subject, "error", err)
		}
	}
}

// forgetDelay is how long a taken record's rewrite may wait to be sent
// with others; forgetMaxMsgs and forgetMaxBytes bound what waits.
const (
	forgetDelay    = 5 * time.Millisecond
	forgetMaxMsgs  = 8
	forgetMaxBytes = 1 << 20
)

// forgetBatch holds taken records' rewrites for up to forgetDelay and
// sends them together. One rewrite sent alone, right after the result it
// rewrites was delivered, went to the server just ahead of the caller's
// next call, and with one call in flight it cost that call its own round
// of wake-ups (client flush, server read, store, watch delivery back):
// 0.59-0.64x the raw JetStream path, where the same runs without
// rewrites got 0.79-0.96x.
// Sent together, the rewrites of several calls share one write and one
// read on each side. Batches stay small (forgetMaxMsgs): their watch
// deliveries come back to this submitter on the path its results take,
// and bursts of 32 or more delayed the results of 8 calls in flight by
// about 8% (measured against 8: see docs/benchmarks.md, Cluster). The
// delay postpones only when a taken record is forgotten (TakenTTL
// later, instead of at once), never an answer.
//
// A batch is sent by the timer's function, on a goroutine of its own, or
// by the caller of the add that fills it; close hands back what is left
// for its caller to send, and waits for a timer's send in progress.
// After close, add hands each rewrite back to be sent at once. No lock
// is held while a batch is sent.
type forgetBatch struct {
	mu      sync.Mutex
	msgs    []*nats.Msg
	bytes   int
	timer   *time.Timer // made at the first rewrite; armed while msgs wait
	armed   bool
	closed  bool
	sending sync.WaitGroup    // the timer's function, from arming to its end
	send    func([]*nats.Msg) // set before the first add: how the timer's function sends
}

// add queues m and returns nil, or returns the batch the caller must
// send now: m with what waited, when the batch is full, or m alone once
// closed.
func (b *forgetBatch) add(m *nats.Msg) []*nats.Msg {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return []*nats.Msg{m}
	}
	b.msgs = append(b.msgs, m)
	b.bytes += len(m.Data)
	if len(b.msgs) >= forgetMaxMsgs || b.bytes >= forgetMaxBytes {
		return b.takeLocked()
	}
	if !b.armed {
		b.armed = true
		b.sending.Add(1)
		if b.timer == nil {
			b.timer = time.AfterFunc(forgetDelay, b.fire)
		} else {
			b.timer.Reset(forgetDelay)
		}
	}
	return nil
}

// takeLocked returns what waits and empties the batch.
func (b *forgetBatch) takeLocked() []*nats.Msg {
	batch := b.msgs
	b.msgs, b.bytes = nil, 0
	return batch
}

// fire is the timer's function: it sends what waits.
func (b *forgetBatch) fire() {
	defer b.sending.Done()
	b.mu.Lock()
	b.armed = false
	batch := b.takeLocked()
	b.mu.Unlock()
	if len(batch) > 0 {
		b.send(batch)
	}
}

// close returns what waits, for the caller to send, after stopping the
// timer or waiting for its function to end; later rewrites go at once.
func (b *forgetBatch) close() []*nats.Msg {
	b.mu.Lock()
	b.closed = true
	if b.armed && b.timer.Stop() {
		b.armed = false
		b.sending.Done() // its function will not run
	}
	batch := b.takeLocked()
	b.mu.Unlock()
	b.sending.Wait()
	return batch
}

// takenHeader is the header of a taken record's rewrite: a per-message
// TTL of d, in whole seconds rounded up (the server counts seconds, and
// takes no less than one).
func takenHeader(d time.Duration) nats.Header {
	secs := int64((max(d, time.Second) + time.Second - 1) / time.Second)
	return nats.Header{"Nats-TTL": []string{strconv.FormatInt(secs, 10) + "s"}}
}
