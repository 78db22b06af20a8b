// Package envelope holds the byte forms that the cluster executor and its
// workers exchange through NATS: the key-value key of a call's result, the
// result record stored under it, and the events (started, log line) a
// worker sends to the submitter. Every decoder here reads bytes written by
// another process and must refuse anything malformed with an error, never
// panic: they are fuzzed.
package envelope

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// version is the first byte of every record and event; a decoder refuses
// any other, so a format change is detected instead of misread.
const version = 1

// MaxKeyLen bounds the length of a key made by Key. Longer ids are hashed.
const MaxKeyLen = 200

// hashPrefix starts a hashed key. Escapes are "=" and two upper-case hex
// digits, so no escaped key can start with "=H".
const hashPrefix = "=H"

// Key returns the result key for a call id (executor.Call.ID): a valid
// JetStream key-value key ([-/_=.a-zA-Z0-9], no empty dot-separated token),
// distinct for distinct ids. Bytes outside [-/_a-zA-Z0-9] are escaped as
// "=XX"; a dot is kept only between two bytes that are not dots. An id
// whose escaped form is longer than MaxKeyLen is replaced by "=H" and the
// hex SHA-256 of the id. The empty id gives "=H" and its hash too.
func Key(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if keepByte(id, i) {
			n++
		} else {
			n += 3
		}
	}
	if id == "" || n > MaxKeyLen {
		sum := sha256.Sum256([]byte(id))
		return hashPrefix + hex.EncodeToString(sum[:])
	}
	if n == len(id) {
		return id
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if keepByte(id, i) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0xf])
	}
	return b.String()
}

const upperHex = "0123456789ABCDEF"

func keepByte(s string, i int) bool {
	c := s[i]
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '/':
		return true
	case c == '.':
		return i > 0 && i < len(s)-1 && s[i-1] != '.' && s[i+1] != '.'
	}
	return false
}

// ErrHashedKey is returned by DecodeKey for a key that holds a hash.
var ErrHashedKey = errors.New("envelope: the key is a hash of the id")

// DecodeKey returns the id that Key encoded, for diagnostics. A hashed key
// gives ErrHashedKey; a malformed one an error.
func DecodeKey(key string) (string, error) {
	if strings.HasPrefix(key, hashPrefix) {
		return "", ErrHashedKey
	}
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c != '=' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(key) {
			return "", fmt.Errorf("envelope: truncated escape in key %q", key)
		}
		v, err := hex.DecodeString(key[i+1 : i+3])
		if err != nil {
			return "", fmt.Errorf("envelope: bad escape in key %q: %w", key, err)
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), nil
}

// Kind says what a record or an event carries.
type Kind byte

// Record kinds and event kinds.
const (
	Output  Kind = 'o' // a result record: Payload is the encoded output
	Failure Kind = 'e' // a result record: Payload is a JSON wire.Error
	Started Kind = 's' // an event: the call started running on a worker
	Log     Kind = 'l' // an event: Payload is one JSON log line of hclog
	Stopped Kind = 'x' // an event: the worker's executor returned a call of a hard submitter

	// On the wire only: a record of kind Output or Failure with Ran set
	// is written with these kinds and a Ran field; records written
	// without Ran (or before it existed) decode as before.
	outputRan  Kind = 'O'
	failureRan Kind = 'E'
)

// Result is the record stored under a call's key: what the call gave back.
type Result struct {
	Kind     Kind   // Output or Failure
	Delivery uint64 // which delivery of the call's message produced it; 0 if none did
	Logs     uint64 // log lines that delivery sent before writing the record
	Worker   string // the worker's name; empty for a verdict of the submitter
	// Ran is how long the call ran on the worker, by the worker's clock
	// (from its executor's start of the call to its answer), for the
	// submitter's Future.Started when the worker's Started event did not
	// arrive first; zero if unknown.
	Ran     time.Duration
	Payload []byte
}

// AppendResult appends the encoding of r to dst.
func AppendResult(dst []byte, r Result) []byte {
	kind := r.Kind
	if r.Ran > 0 {
		switch kind {
		case Output:
			kind = outputRan
		case Failure:
			kind = failureRan
		}
	}
	dst = append(dst, version, byte(kind))
	dst = binary.AppendUvarint(dst, r.Delivery)
	dst = binary.AppendUvarint(dst, r.Logs)
	if kind != r.Kind {
		dst = binary.AppendUvarint(dst, uint64(r.Ran))
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Worker)))
	dst = append(dst, r.Worker...)
	return append(dst, r.Payload...)
}

// DecodeResult decodes a record written by AppendResult. Payload aliases
// data.
func DecodeResult(data []byte) (Result, error) {
	var r Result
	kind, rest, err := header(data)
	if err != nil {
		return r, err
	}
	ran := false
	switch kind {
	case Output, Failure:
	case outputRan:
		kind, ran = Output, true
	case failureRan:
		kind, ran = Failure, true
	default:
		return r, fmt.Errorf("envelope: result of unknown kind %q", byte(kind))
	}
	r.Kind = kind
	if r.Delivery, rest, err = uvarint(rest); err != nil {
		return r, err
	}
	if r.Logs, rest, err = uvarint(rest); err != nil {
		return r, err
	}
	if ran {
		var d uint64
		if d, rest, err = uvarint(rest); err != nil {
			return r, err
		}
		if d == 0 || d > math.MaxInt64 {
			return r, fmt.Errorf("envelope: result with a run time of %d ns", d)
		}
		r.Ran = time.Duration(d)
	}
	var worker []byte
	if worker, rest, err = bytesField(rest); err != nil {
		return r, err
	}
	r.Worker, r.Payload = string(worker), rest
	return r, nil
}

// Event is a message from a worker to the submitter of a call.
type Event struct {
	Kind     Kind   // Started, Log or Stopped
	Delivery uint64 // the delivery of the call's message that sends it
	Key      string // the call's result key
	Payload  []byte // Log: one JSON line
}

// AppendEvent appends the encoding of e to dst.
func AppendEvent(dst []byte, e Event) []byte {
	dst = append(dst, version, byte(e.Kind))
	dst = binary.AppendUvarint(dst, e.Delivery)
	dst = binary.AppendUvarint(dst, uint64(len(e.Key)))
	dst = append(dst, e.Key...)
	return append(dst, e.Payload...)
}

// DecodeEvent decodes an event written by AppendEvent. Payload aliases data.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	kind, rest, err := header(data)
	if err != nil {
		return e, err
	}
	if kind != Started && kind != Log && kind != Stopped {
		return e, fmt.Errorf("envelope: event of unknown kind %q", byte(kind))
	}
	e.Kind = kind
	if e.Delivery, rest, err = uvarint(rest); err != nil {
		return e, err
	}
	var key []byte
	if key, rest, err = bytesField(rest); err != nil {
		return e, err
	}
	e.Key, e.Payload = string(key), rest
	return e, nil
}

func header(data []byte) (Kind, []byte, error) {
	if len(data) < 2 {
		return 0, nil, errors.New("envelope: record too short")
	}
	if data[0] != version {
		return 0, nil, fmt.Errorf("envelope: unknown version %d", data[0])
	}
	return Kind(data[1]), data[2:], nil
}

func uvarint(data []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(data)
	if n <= 0 {
		return 0, nil, errors.New("envelope: bad varint")
	}
	return v, data[n:], nil
}

func bytesField(data []byte) ([]byte, []byte, error) {
	n, rest, err := uvarint(data)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("envelope: field of %d bytes in %d", n, len(rest))
	}
	return rest[:n], rest[n:], nil
}
