package cluster

import (
	"strconv"
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
func (e *Executor) forget(key string, value []byte) {
	if e.takenHeader == nil {
		return
	}
	// The header is shared: the client only reads it.
	if err := e.conn.nc.PublishMsg(&nats.Msg{Subject: e.kvPrefix + key, Data: value, Header: e.takenHeader}); err != nil {
		e.logger.Debug("cannot shorten a taken result's life", "key", key, "error", err)
	}
}

// takenHeader is the header of a taken record's rewrite: a per-message
// TTL of d, in whole seconds rounded up (the server counts seconds, and
// takes no less than one).
func takenHeader(d time.Duration) nats.Header {
	secs := int64((max(d, time.Second) + time.Second - 1) / time.Second)
	return nats.Header{"Nats-TTL": []string{strconv.FormatInt(secs, 10) + "s"}}
}
