package cluster

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names of a record's rewrite: a per-message TTL, and the
// revision the record must still have.
const (
	headerTTL          = "Nats-TTL"
	headerExpectLastSS = "Nats-Expected-Last-Subject-Sequence"
)

// forget lets the bucket drop a record this submitter has taken, at
// revision rev, after Setup.TakenTTL instead of ResultTTL: it writes the
// same record again, with a per-message TTL, over that revision only.
// The bucket keeps one revision per key, so the longer-lived one goes.
// Until the TTL ends the record answers as before (a re-submission, a
// Collect, a call delivered again all find it, and create-if-absent
// still refuses a second result); then the server removes it, with no
// marker. The write is a plain publish without a reply: nothing waits
// for it, and a refusal (another submitter rewrote the record first, so
// the revision moved on) changes nothing, since the record stays
// ResultTTL at worst. It does nothing in a bucket that keeps results no
// longer than TakenTTL or takes no per-message TTLs (Setup.shortens).
func (e *Executor) forget(key string, value []byte, rev uint64) {
	if e.takenTTL == "" || rev == 0 {
		return
	}
	m := &nats.Msg{
		Subject: e.kvPrefix + key,
		Data:    value,
		Header: nats.Header{
			headerTTL:          []string{e.takenTTL},
			headerExpectLastSS: []string{strconv.FormatUint(rev, 10)},
		},
	}
	if err := e.conn.nc.PublishMsg(m); err != nil {
		e.logger.Debug("cannot shorten a taken result's life", "key", key, "error", err)
	}
}

// ttlHeader is d as a per-message TTL: whole seconds, rounded up (the
// server counts seconds, and takes no less than one).
func ttlHeader(d time.Duration) string {
	return strconv.FormatInt(int64((max(d, time.Second)+time.Second-1)/time.Second), 10) + "s"
}
