package observe

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrTraceParent matches every error of ParseTraceParent.
var ErrTraceParent = errors.New("observe: malformed traceparent")

// TraceParent is a parsed W3C traceparent header
// (https://www.w3.org/TR/trace-context/#traceparent-header):
// "00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>".
type TraceParent struct {
	Version byte
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte // bit 0: sampled
}

// ParseTraceParent parses s as the W3C Trace Context spec says a receiver
// must: lower-case hex only; version ff is invalid; a trace id or a span id
// of all zeros is invalid; version 00 is exactly 55 characters, and a
// higher version may be longer if the character after the flags is "-"
// (the extra fields are ignored). Anything else is an error matching
// ErrTraceParent; it never panics, whatever s holds.
func ParseTraceParent(s string) (TraceParent, error) {
	var tp TraceParent
	if len(s) < 55 {
		return tp, fmt.Errorf("%w: %d characters", ErrTraceParent, len(s))
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return tp, fmt.Errorf("%w: separators", ErrTraceParent)
	}
	var v [1]byte
	if !lowerHex(v[:], s[0:2]) || !lowerHex(tp.TraceID[:], s[3:35]) || !lowerHex(tp.SpanID[:], s[36:52]) {
		return TraceParent{}, fmt.Errorf("%w: not lower-case hex", ErrTraceParent)
	}
	tp.Version = v[0]
	var f [1]byte
	if !lowerHex(f[:], s[53:55]) {
		return TraceParent{}, fmt.Errorf("%w: flags not lower-case hex", ErrTraceParent)
	}
	tp.Flags = f[0]
	switch {
	case tp.Version == 0xff:
		return TraceParent{}, fmt.Errorf("%w: version ff", ErrTraceParent)
	case tp.Version == 0 && len(s) != 55:
		return TraceParent{}, fmt.Errorf("%w: version 00 with %d characters", ErrTraceParent, len(s))
	case len(s) > 55 && s[55] != '-':
		return TraceParent{}, fmt.Errorf("%w: trailing characters", ErrTraceParent)
	case tp.TraceID == [16]byte{}:
		return TraceParent{}, fmt.Errorf("%w: zero trace id", ErrTraceParent)
	case tp.SpanID == [8]byte{}:
		return TraceParent{}, fmt.Errorf("%w: zero span id", ErrTraceParent)
	}
	return tp, nil
}

// lowerHex decodes s into dst (len(s) == 2*len(dst)) if s is lower-case
// hex only.
func lowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

// String returns the version 00 form of tp (any other version is written
// as 00: that is the only form defined).
func (tp TraceParent) String() string {
	b := make([]byte, 0, 55)
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, tp.TraceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, tp.SpanID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, []byte{tp.Flags})
	return string(b)
}

// Sampled reports whether the sampled flag is set.
func (tp TraceParent) Sampled() bool { return tp.Flags&1 != 0 }

// TraceIDs returns the trace id and the span id of a traceparent as lower-
// case hex, for log lines, without parsing it fully: ok is false unless s
// is a valid traceparent (see ParseTraceParent).
func TraceIDs(s string) (traceID, spanID string, ok bool) {
	if _, err := ParseTraceParent(s); err != nil {
		return "", "", false
	}
	return s[3:35], s[36:52], true
}

// MaxTraceState bounds the length of a tracestate that flowline carries:
// the W3C spec asks carriers to propagate at least 512 characters.
const MaxTraceState = 512

// ValidTraceState reports whether s is a tracestate flowline carries: at
// most MaxTraceState characters, each printable ASCII, with at most 32
// comma-separated members (the spec's limit). Its members' syntax is left
// to the tracing library that reads it. The empty tracestate is valid.
func ValidTraceState(s string) bool {
	if len(s) > MaxTraceState {
		return false
	}
	members := 1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return false
		}
		if c == ',' {
			members++
		}
	}
	return members <= 32
}

// Clean returns traceparent and tracestate as a receiver keeps them: both
// empty when the traceparent is invalid, and the tracestate empty when it
// is invalid (the spec's rule: an invalid tracestate is dropped, the
// traceparent kept).
func Clean(traceparent, tracestate string) (string, string) {
	if traceparent == "" {
		return "", ""
	}
	if _, err := ParseTraceParent(traceparent); err != nil {
		return "", ""
	}
	if !ValidTraceState(tracestate) {
		tracestate = ""
	}
	return traceparent, tracestate
}
