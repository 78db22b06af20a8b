package envelope_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor/cluster/internal/envelope"
	"github.com/flowline-go/flowline/observe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// validKey is the rule the NATS client applies to key-value keys.
var validKey = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func checkKey(t *testing.T, key string) {
	t.Helper()
	require.Regexp(t, validKey, key)
	assert.False(t, strings.HasPrefix(key, "."), "key %q starts with a dot", key)
	assert.False(t, strings.HasSuffix(key, "."), "key %q ends with a dot", key)
	assert.NotContains(t, key, "..")
	assert.LessOrEqual(t, len(key), envelope.MaxKeyLen)
}

func TestKey(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"run/task/1", "run/task/1"},
		{"run.1/executortest.echo/2", "run.1/executortest.echo/2"},
		{"/task/1", "/task/1"},
		{"a b/t/1", "a=20b/t/1"},
		{".run./t/1", "=2Erun./t/1"},
		{"a..b/t/1", "a=2E=2Eb/t/1"},
		{"x=y/t/1", "x=3Dy/t/1"},
		{"é/t/1", "=C3=A9/t/1"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			key := envelope.Key(tc.id)
			assert.Equal(t, tc.want, key)
			checkKey(t, key)
			id, err := envelope.DecodeKey(key)
			require.NoError(t, err)
			assert.Equal(t, tc.id, id)
		})
	}
}

func TestKeyHashesLongAndEmptyIDs(t *testing.T) {
	long := strings.Repeat("r", envelope.MaxKeyLen+1) + "/t/1"
	for _, id := range []string{"", long, strings.Repeat(" ", 100)} {
		key := envelope.Key(id)
		checkKey(t, key)
		assert.True(t, strings.HasPrefix(key, "=H"), "key %q", key)
		_, err := envelope.DecodeKey(key)
		assert.ErrorIs(t, err, envelope.ErrHashedKey)
	}
	assert.NotEqual(t, envelope.Key(long), envelope.Key(long+"x"))
}

func TestDecodeKeyRefusesBadEscapes(t *testing.T) {
	for _, key := range []string{"a=", "a=4", "a=ZZ"} {
		_, err := envelope.DecodeKey(key)
		assert.Error(t, err, key)
	}
}

func TestResultRoundTrip(t *testing.T) {
	r := envelope.Result{Kind: envelope.Failure, Delivery: 3, Logs: 300, Worker: "host-12", Payload: []byte(`{"class":"failure"}`)}
	got, err := envelope.DecodeResult(envelope.AppendResult(nil, r))
	require.NoError(t, err)
	assert.Equal(t, r, got)

	r = envelope.Result{Kind: envelope.Output}
	got, err = envelope.DecodeResult(envelope.AppendResult(nil, r))
	require.NoError(t, err)
	assert.Equal(t, envelope.Output, got.Kind)
	assert.Empty(t, got.Payload)
	assert.Empty(t, got.Worker)

	// A run time travels with either kind; without one the record is the
	// same bytes as before it existed.
	for _, k := range []envelope.Kind{envelope.Output, envelope.Failure} {
		r = envelope.Result{Kind: k, Delivery: 1, Logs: 2, Worker: "w", Ran: 1500 * time.Millisecond, Payload: []byte("x")}
		got, err = envelope.DecodeResult(envelope.AppendResult(nil, r))
		require.NoError(t, err)
		assert.Equal(t, r, got)
	}
	old := envelope.AppendResult(nil, envelope.Result{Kind: envelope.Output, Delivery: 1, Worker: "w"})
	assert.Equal(t, []byte{1, 'o', 1, 0, 1, 'w'}, old)
	_, err = envelope.DecodeResult([]byte{1, 'O', 1, 0, 0, 1, 'w'})
	assert.Error(t, err, "a zero run time is written as none, never read")
	_, err = envelope.DecodeResult([]byte{1, 'E', 1, 0})
	assert.Error(t, err, "truncated before the run time")
}

func TestEventRoundTrip(t *testing.T) {
	e := envelope.Event{Kind: envelope.Log, Delivery: 1, Key: "run/task/1", Payload: []byte(`{"@message":"hi"}`)}
	got, err := envelope.DecodeEvent(envelope.AppendEvent(nil, e))
	require.NoError(t, err)
	assert.Equal(t, e, got)
}

func TestDecodeRefusesMalformed(t *testing.T) {
	good := envelope.AppendResult(nil, envelope.Result{Kind: envelope.Output, Worker: "w", Payload: []byte("1")})
	for name, data := range map[string][]byte{
		"empty":           nil,
		"one byte":        {1},
		"other version":   append([]byte{2}, good[1:]...),
		"unknown kind":    {1, 'x', 0, 0, 0},
		"event kind":      {1, byte(envelope.Log), 0, 0, 0},
		"truncated":       good[:3],
		"worker too long": {1, byte(envelope.Output), 0, 0, 9, 'w'},
		"bad varint":      {1, byte(envelope.Output), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		_, err := envelope.DecodeResult(data)
		assert.Error(t, err, name)
	}
	_, err := envelope.DecodeEvent(good)
	assert.Error(t, err, "a result is not an event")
}

func FuzzKey(f *testing.F) {
	for _, s := range []string{"", "run/task/1", "..", "a.b", ".", "a..b", "x=y", "é", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		key := envelope.Key(id)
		checkKey(t, key)
		got, err := envelope.DecodeKey(key)
		if strings.HasPrefix(key, "=H") {
			require.ErrorIs(t, err, envelope.ErrHashedKey)
			return
		}
		require.NoError(t, err)
		require.Equal(t, id, got, "Key is not injective: DecodeKey does not give the id back")
	})
}

func FuzzDecodeResult(f *testing.F) {
	f.Add(envelope.AppendResult(nil, envelope.Result{Kind: envelope.Output, Delivery: 1, Worker: "w", Payload: []byte("{}")}))
	f.Add(envelope.AppendResult(nil, envelope.Result{Kind: envelope.Failure, Logs: 1 << 40}))
	f.Add([]byte{1, 'o'})
	f.Add(envelope.AppendResult(nil, envelope.Result{Kind: envelope.Failure, Ran: time.Second, Payload: []byte("{}")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := envelope.DecodeResult(data)
		if err != nil {
			return
		}
		require.GreaterOrEqual(t, r.Ran, time.Duration(0))
		require.Contains(t, []envelope.Kind{envelope.Output, envelope.Failure}, r.Kind)
		again, err := envelope.DecodeResult(envelope.AppendResult(nil, r))
		require.NoError(t, err)
		require.Equal(t, r.Kind, again.Kind)
		require.Equal(t, r.Delivery, again.Delivery)
		require.Equal(t, r.Logs, again.Logs)
		require.Equal(t, r.Worker, again.Worker)
		require.Equal(t, r.Ran, again.Ran)
		require.Equal(t, string(r.Payload), string(again.Payload))
	})
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(envelope.AppendEvent(nil, envelope.Event{Kind: envelope.Started, Delivery: 2, Key: "k"}))
	f.Add(envelope.AppendEvent(nil, envelope.Event{Kind: envelope.Log, Key: "k", Payload: []byte(`{"a":1}`)}))
	f.Add([]byte{1, 's', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := envelope.DecodeEvent(data)
		if err != nil {
			return
		}
		again, err := envelope.DecodeEvent(envelope.AppendEvent(nil, e))
		require.NoError(t, err)
		require.Equal(t, e.Kind, again.Kind)
		require.Equal(t, e.Delivery, again.Delivery)
		require.Equal(t, e.Key, again.Key)
		require.Equal(t, string(e.Payload), string(again.Payload))
	})
}

func TestCallRoundTrip(t *testing.T) {
	for _, c := range []envelope.Call{
		{Task: "t", Key: "r/t/1", Run: "r", Attempt: 1},
		{Task: "t", Key: "k", Run: "", Attempt: 3, Limit: time.Second, Grace: 5 * time.Millisecond,
			Reply: "flowline.events.x", Log: true, Hard: true},
		{Task: "t", Key: "k", Attempt: 1, Limit: time.Second, Grace: -1},          // no grace at all
		{Task: "t", Key: "r/t/2", Run: "r", Attempt: 2, Again: true, Timed: true}, // collected
		{Task: "t", Key: "k", Attempt: 1, Timed: true, Reply: "r",
			TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "rojo=00f067aa0ba902b7"},
	} {
		got, input, err := envelope.DecodeCall(envelope.AppendCall(nil, c, []byte(`{"N":1}`)))
		require.NoError(t, err)
		assert.Equal(t, c, got)
		assert.Equal(t, `{"N":1}`, string(input))
	}
}

func TestDecodeCallRefusesMalformed(t *testing.T) {
	good := envelope.Call{Task: "t", Key: "k", Attempt: 1}
	for name, c := range map[string]envelope.Call{
		"no task":      {Key: "k", Attempt: 1},
		"no key":       {Task: "t", Attempt: 1},
		"attempt zero": {Task: "t", Key: "k"},
	} {
		got, _, err := envelope.DecodeCall(envelope.AppendCall(nil, c, nil))
		assert.Error(t, err, name)
		assert.Equal(t, c.Key, got.Key, "%s: the key is kept for reporting", name)
	}
	data := envelope.AppendCall(nil, good, nil)
	for name, d := range map[string][]byte{
		"empty":     nil,
		"a result":  envelope.AppendResult(nil, envelope.Result{Kind: envelope.Output}),
		"truncated": data[:len(data)-2],
		"no flags":  data[:2],
	} {
		_, _, err := envelope.DecodeCall(d)
		assert.Error(t, err, name)
	}
	_, _, err := envelope.DecodeCall(data)
	assert.NoError(t, err)
}

func TestDecodeCallDropsABadTraceContext(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, tc := range []struct{ tp, ts, wantTP, wantTS string }{
		{tp, "a=1", tp, "a=1"},
		{"00-00000000000000000000000000000000-b7ad6b7169203331-01", "a=1", "", ""},
		{tp + "-extra", "", "", ""}, // version 00 has exactly four fields
		{tp, "a=\n", tp, ""},
		{"", "a=1", "", ""},
	} {
		c := envelope.Call{Task: "t", Key: "k", Attempt: 1, TraceParent: tc.tp, TraceState: tc.ts}
		got, input, err := envelope.DecodeCall(envelope.AppendCall(nil, c, []byte("in")))
		require.NoError(t, err)
		assert.Equal(t, tc.wantTP, got.TraceParent, tc.tp)
		assert.Equal(t, tc.wantTS, got.TraceState, tc.ts)
		assert.Equal(t, "in", string(input), "the input follows the trace context")
	}
	// A flag that promises a trace context the message lacks is malformed.
	data := envelope.AppendCall(nil, envelope.Call{Task: "t", Key: "k", Attempt: 1, TraceParent: tp}, nil)
	_, _, err := envelope.DecodeCall(data[:len(data)-10])
	assert.Error(t, err)
}

func FuzzDecodeCall(f *testing.F) {
	f.Add(envelope.AppendCall(nil, envelope.Call{Task: "t", Key: "k", Run: "r", Attempt: 2, Limit: time.Second,
		Reply: "x.events.y", Log: true}, []byte("{}")))
	f.Add(envelope.AppendCall(nil, envelope.Call{}, nil))
	f.Add([]byte{1, 'c', 3})
	f.Add(envelope.AppendCall(nil, envelope.Call{Task: "t", Key: "k", Attempt: 1, Timed: true,
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "k=v"}, []byte("{}")))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, input, err := envelope.DecodeCall(data)
		if err != nil {
			return
		}
		require.NotEmpty(t, c.Task)
		require.NotEmpty(t, c.Key)
		require.Positive(t, c.Attempt)
		require.GreaterOrEqual(t, c.Limit, time.Duration(0))
		require.GreaterOrEqual(t, c.Grace, time.Duration(-1))
		// A trace context that arrives is valid, or is none.
		if c.TraceParent == "" {
			require.Empty(t, c.TraceState)
		} else {
			_, perr := observe.ParseTraceParent(c.TraceParent)
			require.NoError(t, perr)
			require.True(t, observe.ValidTraceState(c.TraceState))
		}
		again, input2, err := envelope.DecodeCall(envelope.AppendCall(nil, c, input))
		require.NoError(t, err)
		require.Equal(t, c, again)
		require.Equal(t, string(input), string(input2))
	})
}
