// Package proto is the protocol between the subprocess executor and its
// worker processes: the messages, their kinds, and their encoding as
// frames (package internal/frame). The parent writes Call frames to the
// worker's fd 3; the worker writes one Hello frame, then Log and Result
// frames, to its fd 4. The result of a Direct call goes to fd 5 instead,
// the direct pipe, which the caller reads itself; when that call logged,
// it goes to fd 4 after its logs, and a Moved frame on fd 5 says so. Every
// decoder refuses malformed input with an error that matches
// frame.ErrMalformed; none panics.
package proto

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/internal/frame"
	"github.com/flowline-go/flowline/internal/wire"
	"github.com/flowline-go/flowline/observe"
)

// Version is the protocol version. A worker announces it in its Hello; the
// parent refuses a worker of another version.
const Version = 4 // 2: Call carries the trace context; 3: and Spin; 4: and Direct

// The kinds of frames.
const (
	KindHello  byte = 'H' // worker -> parent, once, first
	KindCall   byte = 'C' // parent -> worker
	KindResult byte = 'R' // worker -> parent, one per Call
	KindLog    byte = 'L' // worker -> parent, any number during a Call
	KindMoved  byte = 'M' // worker -> parent on the direct pipe: the Result went to fd 4
)

// Hello is the worker's handshake: it is serving, with this protocol.
type Hello struct {
	Version uint64
	PID     int
}

// Call asks the worker to run one task.
type Call struct {
	Seq      uint64 // unique per worker, echoed by Result and Log
	Task     string
	RunID    string
	Attempt  int
	Limit    time.Duration // zero: no limit
	Deadline int64         // wall clock, Unix nanoseconds; zero: no limit
	LogLevel int           // hclog.Level for the task's logger; hclog.Off: none
	Input    []byte        // the input in the handler's codec

	// The call's W3C trace context; DecodeCall drops what observe.Clean
	// refuses (an invalid traceparent drops both).
	TraceParent, TraceState string

	// Spin asks the worker to poll for its next call for a while after
	// this one's result (Options.Spin): the parent expects it soon and has
	// CPU to spare, since this is the only call it runs.
	Spin bool

	// Direct asks the worker to send the Result on the direct pipe (fd 5),
	// where the caller waits for it on its own goroutine, or, if the call
	// sent Log frames, on fd 4 after them, with a Moved frame on fd 5: a
	// call's logs then reach its logger before its answer, as they do
	// without Direct.
	Direct bool
}

// Moved says, on the direct pipe, that the Result of call Seq went to fd 4.
type Moved struct {
	Seq uint64
}

// Result is the outcome of a Call.
type Result struct {
	Seq     uint64
	Expired bool        // the call's deadline had passed when the task returned
	Output  []byte      // the encoded result; nil when Err is set
	Err     *wire.Error // nil on success
}

// Log is one log record of the running task, as a JSON line of hclog.
type Log struct {
	Seq  uint64
	Line []byte
}

// Append appends h as a frame of at most limit bytes.
func (h *Hello) Append(b []byte, limit int) ([]byte, error) {
	start := len(b)
	b = frame.Begin(b, KindHello)
	b = frame.AppendUvarint(b, h.Version)
	b = frame.AppendVarint(b, int64(h.PID))
	return end(b, start, limit)
}

// DecodeHello decodes the body of a KindHello frame.
func DecodeHello(body []byte) (Hello, error) {
	f := frame.NewFields(body)
	h := Hello{Version: f.Uvarint(), PID: int(f.Varint())}
	return h, wrap("hello", f.Finish())
}

// Append appends c as a frame of at most limit bytes; a frame over the
// limit is a *frame.TooLargeError and b is returned unchanged.
func (c *Call) Append(b []byte, limit int) ([]byte, error) {
	start := len(b)
	b = frame.Begin(b, KindCall)
	b = frame.AppendUvarint(b, c.Seq)
	b = frame.AppendString(b, c.Task)
	b = frame.AppendString(b, c.RunID)
	b = frame.AppendVarint(b, int64(c.Attempt))
	b = frame.AppendVarint(b, int64(c.Limit))
	b = frame.AppendVarint(b, c.Deadline)
	b = frame.AppendVarint(b, int64(c.LogLevel))
	b = frame.AppendBytes(b, c.Input)
	b = frame.AppendString(b, c.TraceParent)
	b = frame.AppendString(b, c.TraceState)
	b = frame.AppendBool(b, c.Spin)
	b = frame.AppendBool(b, c.Direct)
	return end(b, start, limit)
}

// DecodeCall decodes the body of a KindCall frame. The Call does not alias
// body.
func DecodeCall(body []byte) (Call, error) {
	f := frame.NewFields(body)
	c := Call{
		Seq:      f.Uvarint(),
		Task:     f.Str(),
		RunID:    f.Str(),
		Attempt:  int(f.Varint()),
		Limit:    time.Duration(f.Varint()),
		Deadline: f.Varint(),
		LogLevel: int(f.Varint()),
	}
	if in := f.Bytes(); in != nil {
		c.Input = append([]byte(nil), in...)
	}
	tp, ts := f.Str(), f.Str()
	c.Spin = f.Bool()
	c.Direct = f.Bool()
	if err := f.Finish(); err != nil {
		return c, wrap("call", err)
	}
	c.TraceParent, c.TraceState = observe.Clean(tp, ts)
	return c, nil
}

// Append appends r as a frame of at most limit bytes; a frame over the
// limit is a *frame.TooLargeError and b is returned unchanged.
func (r *Result) Append(b []byte, limit int) ([]byte, error) {
	var errJSON []byte
	if r.Err != nil {
		var err error
		if errJSON, err = json.Marshal(r.Err); err != nil {
			return b, fmt.Errorf("proto: encoding an error: %w", err)
		}
	}
	start := len(b)
	b = frame.Begin(b, KindResult)
	b = frame.AppendUvarint(b, r.Seq)
	b = frame.AppendBool(b, r.Expired)
	b = frame.AppendBytes(b, r.Output)
	b = frame.AppendBytes(b, errJSON)
	return end(b, start, limit)
}

// DecodeResult decodes the body of a KindResult frame. Output aliases
// body.
func DecodeResult(body []byte) (Result, error) {
	f := frame.NewFields(body)
	r := Result{Seq: f.Uvarint(), Expired: f.Bool(), Output: f.Bytes()}
	errJSON := f.Bytes()
	if err := f.Finish(); err != nil {
		return Result{}, wrap("result", err)
	}
	if errJSON != nil {
		r.Err = new(wire.Error)
		if err := json.Unmarshal(errJSON, r.Err); err != nil {
			return Result{}, fmt.Errorf("proto: malformed result: %w: error: %v", frame.ErrMalformed, err)
		}
		if r.Output != nil {
			return Result{}, fmt.Errorf("proto: malformed result: %w: both an output and an error", frame.ErrMalformed)
		}
	}
	return r, nil
}

// Append appends m as a frame of at most limit bytes.
func (m *Moved) Append(b []byte, limit int) ([]byte, error) {
	start := len(b)
	b = frame.Begin(b, KindMoved)
	b = frame.AppendUvarint(b, m.Seq)
	return end(b, start, limit)
}

// DecodeMoved decodes the body of a KindMoved frame.
func DecodeMoved(body []byte) (Moved, error) {
	f := frame.NewFields(body)
	m := Moved{Seq: f.Uvarint()}
	return m, wrap("moved", f.Finish())
}

// Append appends l as a frame of at most limit bytes; a frame over the
// limit is a *frame.TooLargeError and b is returned unchanged.
func (l *Log) Append(b []byte, limit int) ([]byte, error) {
	start := len(b)
	b = frame.Begin(b, KindLog)
	b = frame.AppendUvarint(b, l.Seq)
	b = frame.AppendBytes(b, l.Line)
	return end(b, start, limit)
}

// DecodeLog decodes the body of a KindLog frame. Line aliases body.
func DecodeLog(body []byte) (Log, error) {
	f := frame.NewFields(body)
	l := Log{Seq: f.Uvarint(), Line: f.Bytes()}
	return l, wrap("log", f.Finish())
}

func end(b []byte, start, limit int) ([]byte, error) {
	out, err := frame.End(b, start, limit)
	if err != nil {
		return b[:start], err
	}
	return out, nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("proto: malformed %s: %w", what, err)
}
