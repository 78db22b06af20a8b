package cluster

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// puller asks the consumer for calls on behalf of the worker's idle
// slots: one pull request for as many calls as slots are idle and not
// promised to a request already open, on one subscription for the
// worker's life. A delivered call goes at once to an idle slot; one that
// finds no idle slot (a request the worker took for lost, answered late)
// is handed back at once (Nak). So a slot holds only the call it runs and
// heartbeats, as with one fetch per slot, without a subscription, an
// inbox and a goroutine per pull.
//
// Deliveries do not say which request they answer: they are counted
// against the oldest open request, as the consumer serves its waiting
// requests in order. A request ends when the consumer says so (a status:
// expired, a conflict such as a leadership change, no responders), or
// when the worker gives up on it pullWait plus pullGrace after sending it
// (parked at a consumer leader that died, lost in a reconnect). Counting a
// delivery against the wrong request moves a promise from one open
// request to another and never changes their sum, which is exact once
// all have ended.
type puller struct {
	w       *Worker
	subject string // the consumer's next-message API subject
	inbox   string // requests reply to inbox + "." + their number
	sub     *nats.Subscription
	kick    chan struct{} // size 1: idle slots changed, or a request ended
	stop    chan struct{}
	done    chan struct{}

	mu       sync.Mutex
	idle     []*slot    // slots waiting for a call
	promised int        // calls asked for and not delivered yet (Σ open[i].want)
	open     []*pullReq // oldest first; each with want > 0
	seq      uint64
	failing  bool // the last request failed; the next success says the consumer answers again
	backoff  time.Duration
	notUntil time.Time // no request before this, after a failure
}

// pullReq is an open pull request.
type pullReq struct {
	id     uint64
	want   int       // calls it may still deliver
	giveUp time.Time // when the worker takes it for lost
}

// pullGrace is how long after its expiry a request's end status may be
// late before the worker takes the request for lost.
const pullGrace = 250 * time.Millisecond

// newPuller subscribes to the worker's pull inbox; run starts it.
func newPuller(w *Worker, stream, consumer string) (*puller, error) {
	p := &puller{
		w:       w,
		subject: "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		inbox:   w.conn.nc.NewRespInbox(),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		backoff: 50 * time.Millisecond,
	}
	var err error
	if p.sub, err = w.conn.nc.Subscribe(p.inbox+".*", p.onMsg); err != nil {
		return nil, err
	}
	// Calls wait in the subscription only between their delivery and
	// onMsg: no more than the slots asked for. The default pending limits
	// (65536 messages) are far above that.
	return p, nil
}

func (p *puller) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// take makes s idle and waits until the puller gives it a call, ctx
// ends, or the connection is closed for good; it returns nil without a
// call. A slot already made idle (NewWorker makes them all idle before
// the puller starts, so that its first request asks for all of them)
// only waits.
func (p *puller) take(ctx context.Context, s *slot, idle bool) jetstream.Msg {
	if !idle {
		p.mu.Lock()
		p.idle = append(p.idle, s)
		p.mu.Unlock()
		p.wake()
	}
	select {
	case m := <-s.in:
		return m
	case <-ctx.Done():
	case <-p.w.conn.closed:
	}
	p.mu.Lock()
	for i, q := range p.idle {
		if q == s {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.mu.Unlock()
			return nil
		}
	}
	p.mu.Unlock()
	// Given a call just as the wait ended: the caller hands it back.
	return <-s.in
}

// onMsg runs on the subscription's goroutine, for every delivery and
// status on the inbox.
func (p *puller) onMsg(m *nats.Msg) {
	if len(m.Data) == 0 && m.Header != nil {
		if status := m.Header.Get("Status"); status != "" {
			p.onStatus(m, status)
			return
		}
	}
	p.mu.Lock()
	if len(p.open) > 0 { // the oldest open request has want > 0
		r := p.open[0]
		r.want--
		p.promised--
		if r.want == 0 { // answered in full: the consumer is done with it
			p.open[0] = nil
			p.open = p.open[1:]
		}
	}
	var s *slot
	if n := len(p.idle); n > 0 {
		s = p.idle[n-1]
		p.idle = p.idle[:n-1]
	}
	recovered := p.failing
	p.failing = false
	p.backoff = 50 * time.Millisecond
	p.mu.Unlock()
	if recovered {
		p.w.kickBeat()
	}
	msg := &pulledMsg{m: m}
	if s == nil {
		// More calls came than slots are idle: a request taken for lost
		// was answered after all. Handed back at once, never held.
		p.w.received.Add(1)
		p.w.handBackMsg(msg)
		return
	}
	s.in <- msg // s.in has room: s is idle and alone in taking from it
}

// onStatus ends the request a status answers.
func (p *puller) onStatus(m *nats.Msg, status string) {
	if status == "100" { // an idle heartbeat or flow control: nothing ends
		return
	}
	id, _ := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	// 404 (no messages) and 408 (expired) are a consumer that answers;
	// 409 (a leadership change, too many waiting requests, ...) and 503
	// (no responders: no consumer leader) are failures, after which the
	// worker waits a little before asking again.
	failed := status != "404" && status != "408"
	p.mu.Lock()
	p.endLocked(id)
	recovered := false
	if failed {
		if !p.failing {
			p.failing = true
			p.w.noteFailure()
		}
		p.notUntil = time.Now().Add(p.backoff)
		p.backoff = min(2*p.backoff, pullRetryMax)
	} else {
		recovered = p.failing
		p.failing = false
		p.backoff = 50 * time.Millisecond
	}
	p.mu.Unlock()
	if failed {
		p.w.logger.Debug("pull", "status", status, "description", m.Header.Get("Description"))
	}
	if recovered {
		p.w.kickBeat()
	}
	p.wake()
}

// endLocked ends the open request id (none if it ended already); p.mu is
// held.
func (p *puller) endLocked(id uint64) {
	for i, r := range p.open {
		if r.id == id {
			p.promised -= r.want
			p.open = append(p.open[:i], p.open[i+1:]...)
			return
		}
	}
}

// run sends pull requests for the idle slots until stopped.
func (p *puller) run() {
	defer close(p.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var body []byte
	for {
		now := time.Now()
		p.mu.Lock()
		for len(p.open) > 0 && !now.Before(p.open[0].giveUp) {
			p.promised -= p.open[0].want
			p.open[0] = nil
			p.open = p.open[1:]
		}
		n := len(p.idle) - p.promised
		var next time.Time
		var id uint64
		switch {
		case n <= 0 || p.promised > 0 || p.w.draining.Load():
			// While a request is open, slots that become idle wait for it
			// to be answered in full (or to end) and are then asked for
			// together: fewer, larger requests. Its calls still go to
			// any idle slot.
			n = 0
		case now.Before(p.notUntil):
			next, n = p.notUntil, 0
		default:
			p.seq++
			id = p.seq
			p.open = append(p.open, &pullReq{id: id, want: n, giveUp: now.Add(pullWait + pullGrace)})
			p.promised += n
		}
		if len(p.open) > 0 && (next.IsZero() || p.open[0].giveUp.Before(next)) {
			next = p.open[0].giveUp
		}
		p.mu.Unlock()
		if n > 0 {
			body = append(body[:0], `{"batch":`...)
			body = strconv.AppendInt(body, int64(n), 10)
			body = append(body, `,"expires":`...)
			body = strconv.AppendInt(body, int64(pullWait), 10)
			body = append(body, '}')
			reply := p.inbox + "." + strconv.FormatUint(id, 10)
			if err := p.w.conn.nc.PublishRequest(p.subject, reply, body); err != nil {
				p.w.logger.Debug("pull", "error", err)
				p.mu.Lock()
				p.endLocked(id)
				if !p.failing {
					p.failing = true
					p.w.noteFailure()
				}
				p.notUntil = time.Now().Add(p.backoff)
				p.backoff = min(2*p.backoff, pullRetryMax)
				p.mu.Unlock()
				if p.w.conn.nc.IsClosed() {
					return
				}
			}
			continue // more may have become idle meanwhile
		}
		if !next.IsZero() {
			t.Reset(time.Until(next))
		}
		select {
		case <-p.stop:
			return
		case <-p.w.conn.closed:
			return
		case <-p.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// pulledMsg is a call delivered to the worker's pull inbox, with
// JetStream's message methods (the nats package's, which work on any
// message with an ack subject).
type pulledMsg struct{ m *nats.Msg }

var _ jetstream.Msg = (*pulledMsg)(nil)

func (p *pulledMsg) Metadata() (*jetstream.MsgMetadata, error) {
	md, err := p.m.Metadata()
	if err != nil {
		return nil, err
	}
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Consumer: md.Sequence.Consumer, Stream: md.Sequence.Stream},
		NumDelivered: md.NumDelivered, NumPending: md.NumPending, Timestamp: md.Timestamp,
		Stream: md.Stream, Consumer: md.Consumer, Domain: md.Domain,
	}, nil
}
func (p *pulledMsg) Data() []byte                           { return p.m.Data }
func (p *pulledMsg) Headers() nats.Header                   { return p.m.Header }
func (p *pulledMsg) Subject() string                        { return p.m.Subject }
func (p *pulledMsg) Reply() string                          { return p.m.Reply }
func (p *pulledMsg) Ack() error                             { return p.m.Ack() }
func (p *pulledMsg) DoubleAck(ctx context.Context) error    { return p.m.AckSync(nats.Context(ctx)) }
func (p *pulledMsg) Nak() error                             { return p.m.Nak() }
func (p *pulledMsg) NakWithDelay(delay time.Duration) error { return p.m.NakWithDelay(delay) }
func (p *pulledMsg) InProgress() error                      { return p.m.InProgress() }
func (p *pulledMsg) Term() error                            { return p.m.Term() }
func (p *pulledMsg) TermWithReason(reason string) error {
	return p.m.Respond([]byte("+TERM " + reason))
}
