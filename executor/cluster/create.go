package cluster

import (
	"bytes"
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// createHeader makes a write to the bucket create-if-absent: the server
// stores it only if the key has no record yet. Shared by every write: the
// client only reads a message's header.
var createHeader = nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{"0"}}

// createRecord writes rec under key create-if-absent, as kv.Create does,
// for the worker's result of every call. A stored record is answered by
// the server with a bare acknowledgement ({"stream":...}), recognised
// here without decoding it, which is most of what kv.Create costs on the
// worker beyond the round trip (a JSON decode of the acknowledgement, a
// key check, a header map). Any other answer (the key exists, the last
// record is a delete marker, an error) is left to kv.Create, which sends
// the write again and says what happened: the same outcome as a first
// attempt, since a write refused by the server stored nothing. Errors of
// the request itself are kv.Create's: no responders is
// jetstream.ErrNoStreamResponse.
func (w *Worker) createRecord(ctx context.Context, key string, rec []byte) error {
	resp, err := w.conn.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: w.kvPrefix + key, Data: rec, Header: createHeader})
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return jetstream.ErrNoStreamResponse
		}
		return err
	}
	if storedAck(resp.Data) {
		return nil
	}
	_, err = w.obj.kv.Create(ctx, key, rec)
	return err
}

// storedAck reports whether a JetStream publish answer says the message
// was stored: an acknowledgement naming its stream, with no error (the
// server writes the error first when there is one).
func storedAck(data []byte) bool {
	return bytes.HasPrefix(data, []byte(`{"stream":"`)) && !bytes.Contains(data, []byte(`"error"`))
}
