package proto_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/subprocess/internal/proto"
	"github.com/flowline-go/flowline/internal/frame"
	"github.com/flowline-go/flowline/internal/wire"
	"github.com/flowline-go/flowline/observe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// read reads the one frame of b.
func read(t *testing.T, b []byte) (byte, []byte) {
	t.Helper()
	r := frame.NewReader(bytes.NewReader(b), 1<<20)
	kind, body, err := r.Next()
	require.NoError(t, err)
	_, _, err = r.Next()
	require.ErrorIs(t, err, io.EOF, "one frame exactly")
	return kind, body
}

func TestMessagesRoundTrip(t *testing.T) {
	h := proto.Hello{Version: proto.Version, PID: 4242}
	b, err := h.Append(nil, 1<<20)
	require.NoError(t, err)
	kind, body := read(t, b)
	assert.Equal(t, proto.KindHello, kind)
	gotH, err := proto.DecodeHello(body)
	require.NoError(t, err)
	assert.Equal(t, h, gotH)

	c := proto.Call{Seq: 7, Task: "t", RunID: "r", Attempt: 2, Limit: time.Second,
		Deadline: time.Now().UnixNano(), LogLevel: 3, Input: []byte(`{"N":1}`),
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "rojo=00f067aa0ba902b7", Spin: true, Direct: true}
	b, err = c.Append([]byte("junk before"), 1<<20)
	require.NoError(t, err)
	kind, body = read(t, b[len("junk before"):])
	assert.Equal(t, proto.KindCall, kind)
	gotC, err := proto.DecodeCall(body)
	require.NoError(t, err)
	assert.Equal(t, c, gotC)
	body[bytes.Index(body, c.Input)] = 'X'
	assert.Equal(t, c.Input, gotC.Input, "a decoded call does not alias the frame")

	// A trace context that does not parse is dropped on arrival, not
	// passed on: a bad traceparent drops both, a bad tracestate itself.
	for _, tc := range []struct{ tp, ts, wantTP, wantTS string }{
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "ok=1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "ok=1"},
		{"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", "ok=1", "", ""},
		{"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "", "", ""},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "bad\x00state", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", ""},
		{"garbage", "ok=1", "", ""},
	} {
		c := proto.Call{Seq: 1, Task: "t", TraceParent: tc.tp, TraceState: tc.ts}
		b, err := c.Append(nil, 1<<20)
		require.NoError(t, err)
		_, body := read(t, b)
		got, err := proto.DecodeCall(body)
		require.NoError(t, err)
		assert.Equal(t, tc.wantTP, got.TraceParent, tc.tp)
		assert.Equal(t, tc.wantTS, got.TraceState, tc.ts)
	}

	for _, r := range []proto.Result{
		{Seq: 1, Output: []byte(`{"N":2}`)},
		{Seq: 2, Expired: true, Err: wire.EncodeError(&executor.TimeoutError{Task: "t", Limit: time.Second})},
	} {
		b, err = r.Append(nil, 1<<20)
		require.NoError(t, err)
		kind, body = read(t, b)
		assert.Equal(t, proto.KindResult, kind)
		got, err := proto.DecodeResult(body)
		require.NoError(t, err)
		assert.Equal(t, r, got)
	}

	l := proto.Log{Seq: 3, Line: []byte(`{"@message":"hi"}` + "\n")}
	b, err = l.Append(nil, 1<<20)
	require.NoError(t, err)
	kind, body = read(t, b)
	assert.Equal(t, proto.KindLog, kind)
	gotL, err := proto.DecodeLog(body)
	require.NoError(t, err)
	assert.Equal(t, l, gotL)

	m := proto.Moved{Seq: 1 << 40}
	b, err = m.Append(nil, 1<<20)
	require.NoError(t, err)
	kind, body = read(t, b)
	assert.Equal(t, proto.KindMoved, kind)
	gotM, err := proto.DecodeMoved(body)
	require.NoError(t, err)
	assert.Equal(t, m, gotM)
}

func TestAppendOverTheLimitLeavesTheBuffer(t *testing.T) {
	c := proto.Call{Input: make([]byte, 1000)}
	b, err := c.Append([]byte("kept"), 100)
	require.ErrorIs(t, err, frame.ErrTooLarge)
	assert.Equal(t, []byte("kept"), b)
}

func TestDecodersRefuseMalformedBodies(t *testing.T) {
	for _, body := range [][]byte{nil, {0xff}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		_, err := proto.DecodeCall(body)
		assert.ErrorIs(t, err, frame.ErrMalformed)
		_, err = proto.DecodeHello(body)
		assert.ErrorIs(t, err, frame.ErrMalformed)
		if len(body) > 0 {
			_, err = proto.DecodeMoved(body)
			assert.ErrorIs(t, err, frame.ErrMalformed)
		}
	}
	// A result whose error is not JSON, and one with both an output and an error.
	_, err := proto.DecodeResult(frame.AppendBytes(frame.AppendBytes([]byte{1, 0}, nil), []byte("{not json")))
	assert.ErrorIs(t, err, frame.ErrMalformed)
	_, err = proto.DecodeResult(frame.AppendBytes(frame.AppendBytes([]byte{1, 0}, []byte("1")), []byte(`{"class":"failure"}`)))
	assert.ErrorIs(t, err, frame.ErrMalformed)
}

// FuzzDecode decodes arbitrary bodies as every kind of message: no panic,
// and whatever decodes encodes again to something that decodes the same.
func FuzzDecode(f *testing.F) {
	for _, m := range []interface {
		Append([]byte, int) ([]byte, error)
	}{
		&proto.Hello{Version: 1, PID: 9},
		&proto.Call{Seq: 1, Task: "t", Input: []byte("{}"), Limit: time.Second},
		&proto.Call{Seq: 4, Task: "t", Spin: true},
		&proto.Call{Seq: 5, Task: "t", Direct: true},
		&proto.Moved{Seq: 6},
		&proto.Call{Seq: 2, Task: "t", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "k=v"},
		&proto.Call{Seq: 3, Task: "t", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", TraceState: "k=v"},
		&proto.Result{Seq: 1, Output: []byte("2")},
		&proto.Result{Seq: 1, Err: &wire.Error{Class: executor.ClassPanic, Message: "m", Stack: "s"}},
		&proto.Log{Seq: 1, Line: []byte("{}")},
	} {
		b, err := m.Append(nil, 1<<20)
		require.NoError(f, err)
		f.Add(b[frame.HeaderSize+1:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if h, err := proto.DecodeHello(body); err == nil {
			again := reencode(t, &h)
			h2, err := proto.DecodeHello(again)
			require.NoError(t, err)
			assert.Equal(t, h, h2)
		}
		if c, err := proto.DecodeCall(body); err == nil {
			// A trace context that arrives is valid, or is none.
			if c.TraceParent == "" {
				assert.Empty(t, c.TraceState)
			} else {
				_, perr := observe.ParseTraceParent(c.TraceParent)
				require.NoError(t, perr)
				assert.True(t, observe.ValidTraceState(c.TraceState))
			}
			again := reencode(t, &c)
			c2, err := proto.DecodeCall(again)
			require.NoError(t, err)
			assert.Equal(t, c, c2)
		} else {
			require.True(t, errors.Is(err, frame.ErrMalformed), "%v", err)
		}
		if r, err := proto.DecodeResult(body); err == nil {
			again := reencode(t, &r)
			r2, err := proto.DecodeResult(again)
			require.NoError(t, err)
			assert.Equal(t, r, r2)
			// Whatever the error says, it decodes into an error value.
			if r.Err != nil {
				assert.Error(t, r.Err.Decode("task"))
			}
		}
		if l, err := proto.DecodeLog(body); err == nil {
			again := reencode(t, &l)
			l2, err := proto.DecodeLog(again)
			require.NoError(t, err)
			assert.Equal(t, l, l2)
		}
		if m, err := proto.DecodeMoved(body); err == nil {
			again := reencode(t, &m)
			m2, err := proto.DecodeMoved(again)
			require.NoError(t, err)
			assert.Equal(t, m, m2)
		} else {
			require.True(t, errors.Is(err, frame.ErrMalformed), "%v", err)
		}
	})
}

func reencode(t *testing.T, m interface {
	Append([]byte, int) ([]byte, error)
}) []byte {
	t.Helper()
	b, err := m.Append(nil, 1<<30)
	require.NoError(t, err)
	return b[frame.HeaderSize+1:]
}
