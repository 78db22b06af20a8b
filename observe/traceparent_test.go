package observe_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/observe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParseTraceParent(t *testing.T) {
	tp, err := observe.ParseTraceParent(valid)
	require.NoError(t, err)
	assert.Equal(t, byte(0), tp.Version)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", fmt.Sprintf("%x", tp.TraceID))
	assert.Equal(t, "00f067aa0ba902b7", fmt.Sprintf("%x", tp.SpanID))
	assert.True(t, tp.Sampled())
	assert.Equal(t, valid, tp.String())

	// A later version may carry more fields after a "-"; they are ignored.
	tp, err = observe.ParseTraceParent("cc" + valid[2:] + "-what-comes-next")
	require.NoError(t, err)
	assert.Equal(t, byte(0xcc), tp.Version)
	assert.Equal(t, valid, tp.String(), "written as version 00")

	for name, s := range map[string]string{
		"empty":             "",
		"short":             valid[:54],
		"version 00 longer": valid + "-x",
		"version ff":        "ff" + valid[2:],
		"upper case":        strings.ToUpper(valid),
		"zero trace id":     "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"zero span id":      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"bad separator":     "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"not hex":           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
		"bad flags":         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
		"later, no dash":    "01" + valid[2:] + "x",
	} {
		_, err := observe.ParseTraceParent(s)
		assert.ErrorIs(t, err, observe.ErrTraceParent, name)
	}
}

func TestTraceIDs(t *testing.T) {
	trace, span, ok := observe.TraceIDs(valid)
	require.True(t, ok)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", trace)
	assert.Equal(t, "00f067aa0ba902b7", span)
	_, _, ok = observe.TraceIDs("00-bad")
	assert.False(t, ok)
	_, _, ok = observe.TraceIDs("")
	assert.False(t, ok)
}

func TestCleanDropsWhatIsInvalid(t *testing.T) {
	tp, ts := observe.Clean(valid, "a=1,b=2")
	assert.Equal(t, valid, tp)
	assert.Equal(t, "a=1,b=2", ts)
	tp, ts = observe.Clean("garbage", "a=1")
	assert.Empty(t, tp, "an invalid traceparent drops both")
	assert.Empty(t, ts)
	tp, ts = observe.Clean(valid, "a=\x01")
	assert.Equal(t, valid, tp, "an invalid tracestate drops only itself")
	assert.Empty(t, ts)
	_, ts = observe.Clean(valid, strings.Repeat("x", observe.MaxTraceState+1))
	assert.Empty(t, ts, "too long")
	_, ts = observe.Clean(valid, strings.Repeat("a=1,", 32)+"a=1")
	assert.Empty(t, ts, "33 members")
	_, ts = observe.Clean(valid, strings.TrimSuffix(strings.Repeat("a=1,", 32), ","))
	assert.NotEmpty(t, ts, "32 members")
}

// FuzzParseTraceParent: whatever a peer sends, parsing never panics, and
// what parses is written back in the form it was read (version 00) or
// re-parses to the same ids.
func FuzzParseTraceParent(f *testing.F) {
	f.Add(valid)
	f.Add("cc" + valid[2:] + "-x")
	f.Add("ff" + valid[2:])
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := observe.ParseTraceParent(s)
		if err != nil {
			require.ErrorIs(t, err, observe.ErrTraceParent)
			_, _, ok := observe.TraceIDs(s)
			require.False(t, ok)
			return
		}
		again, err := observe.ParseTraceParent(tp.String())
		require.NoError(t, err)
		require.Equal(t, tp.TraceID, again.TraceID)
		require.Equal(t, tp.SpanID, again.SpanID)
		require.Equal(t, tp.Flags, again.Flags)
		if tp.Version == 0 {
			require.Equal(t, s, tp.String())
		}
		trace, span, ok := observe.TraceIDs(s)
		require.True(t, ok)
		require.Equal(t, fmt.Sprintf("%x", tp.TraceID), trace)
		require.Equal(t, fmt.Sprintf("%x", tp.SpanID), span)
	})
}

func ExampleParseTraceParent() {
	tp, err := observe.ParseTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if err != nil {
		panic(err)
	}
	fmt.Printf("trace %x span %x sampled %v\n", tp.TraceID, tp.SpanID, tp.Sampled())
	// Output: trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7 sampled true
}
