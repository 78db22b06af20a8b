package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/flowline-go/flowline/observe"
)

// HeaderMsgID is JetStream's deduplication header: a call's message
// carries its id (executor.Call.ID, "run/task/attempt") there, which is
// also what an operator sees when looking at the stream.
const HeaderMsgID = "Nats-Msg-Id"

// Call is what a call's message carries before the encoded input. It
// travels in the message's data rather than in headers: one header map
// per message is an allocation and a parse on every hop.
type Call struct {
	Key     string // where the result goes; first, so a damaged message still names it
	Task    string
	Run     string
	Attempt int
	Limit   time.Duration // zero: none
	Grace   time.Duration // zero: the worker executor's default; negative (-1 after decoding): none
	Reply   string        // subject for events; empty: send none
	Log     bool          // forward the task's log lines to Reply
	Hard    bool          // the submitter requires hard enforcement
	Timed   bool          // send a Started event to Reply (executor.Call.Trace set)
	Again   bool          // collected: the call may have a result already; look before running

	// The call's W3C trace context. DecodeCall drops what observe.Clean
	// refuses (an invalid traceparent drops both).
	TraceParent, TraceState string
}

const (
	kindCall = 'c'
	flagLog  = 1 << 0
	flagHard = 1 << 1
	// flagNoGrace carries a negative Grace ("no grace at all", as
	// executor.Call defines it), which the unsigned duration field cannot.
	flagNoGrace = 1 << 2
	// flagTrace says a traceparent and a tracestate follow the durations;
	// a message without it (or written before it existed) has none.
	flagTrace = 1 << 3
	flagTimed = 1 << 4
	flagAgain = 1 << 5
)

// AppendCall appends the encoding of c, then input, to dst.
func AppendCall(dst []byte, c Call, input []byte) []byte {
	var flags byte
	if c.Log {
		flags |= flagLog
	}
	if c.Hard {
		flags |= flagHard
	}
	if c.Grace < 0 {
		flags |= flagNoGrace
	}
	if c.Again {
		flags |= flagAgain
	}
	if c.TraceParent != "" || c.TraceState != "" {
		flags |= flagTrace
	}
	if c.Timed {
		flags |= flagTimed
	}
	dst = append(dst, version, kindCall, flags)
	dst = appendString(dst, c.Key)
	dst = appendString(dst, c.Task)
	dst = appendString(dst, c.Run)
	dst = appendString(dst, c.Reply)
	dst = binary.AppendUvarint(dst, uint64(max(c.Attempt, 0)))
	dst = binary.AppendUvarint(dst, uint64(max(c.Limit, 0)))
	dst = binary.AppendUvarint(dst, uint64(max(c.Grace, 0)))
	if flags&flagTrace != 0 {
		dst = appendString(dst, c.TraceParent)
		dst = appendString(dst, c.TraceState)
	}
	return append(dst, input...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeCall decodes a message written by AppendCall and returns the call
// and its encoded input (which aliases data). It fails on anything
// malformed, a missing task or key, an attempt below 1 or a duration out
// of range; with an error, the call still holds every field read before
// the damage, so that a worker can report the failure under its key.
func DecodeCall(data []byte) (Call, []byte, error) {
	var c Call
	kind, rest, err := header(data)
	if err != nil {
		return c, nil, fmt.Errorf("envelope: malformed call message: %w", err)
	}
	if kind != kindCall {
		return c, nil, fmt.Errorf("envelope: malformed call message: kind %q", byte(kind))
	}
	if len(rest) == 0 {
		return c, nil, errors.New("envelope: malformed call message: no flags")
	}
	flags := rest[0]
	rest = rest[1:]
	c.Log, c.Hard, c.Timed = flags&flagLog != 0, flags&flagHard != 0, flags&flagTimed != 0
	c.Again = flags&flagAgain != 0
	for _, f := range []*string{&c.Key, &c.Task, &c.Run, &c.Reply} {
		var b []byte
		if b, rest, err = bytesField(rest); err != nil {
			return c, nil, fmt.Errorf("envelope: malformed call message: %w", err)
		}
		*f = string(b)
	}
	var attempt, limit, grace uint64
	for _, f := range []*uint64{&attempt, &limit, &grace} {
		if *f, rest, err = uvarint(rest); err != nil {
			return c, nil, fmt.Errorf("envelope: malformed call message: %w", err)
		}
	}
	if flags&flagTrace != 0 {
		var tp, ts []byte
		if tp, rest, err = bytesField(rest); err == nil {
			ts, rest, err = bytesField(rest)
		}
		if err != nil {
			return c, nil, fmt.Errorf("envelope: malformed call message: trace context: %w", err)
		}
		c.TraceParent, c.TraceState = observe.Clean(string(tp), string(ts))
	}
	var errs []error
	if c.Key == "" {
		errs = append(errs, errors.New("no result key"))
	}
	if c.Task == "" {
		errs = append(errs, errors.New("no task name"))
	}
	if attempt < 1 || attempt > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("bad attempt %d", attempt))
	} else {
		c.Attempt = int(attempt)
	}
	if limit > math.MaxInt64 || grace > math.MaxInt64 {
		errs = append(errs, errors.New("duration out of range"))
	} else {
		c.Limit, c.Grace = time.Duration(limit), time.Duration(grace)
		if flags&flagNoGrace != 0 {
			c.Grace = -1
		}
	}
	if len(errs) > 0 {
		return c, nil, fmt.Errorf("envelope: malformed call message: %w", errors.Join(errs...))
	}
	return c, rest, nil
}
