//go:build linux

package subprocess_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/subprocess"
)

// traceTask logs a line and returns the trace context its context has.
var traceTask = executor.NewHandler("subprocess.trace", func(ctx context.Context, _ struct{}) ([2]string, error) {
	executor.Logger(ctx).Info("traced")
	id, _ := executor.CallInfo(ctx)
	return [2]string{id.TraceParent, id.TraceState}, nil
}, nil)

// TestTraceContextReachesTheWorker: a call's W3C trace context crosses the
// pipe; the task's context carries it and its log lines, replayed on the
// caller's logger, carry trace_id and span_id. An invalid traceparent is
// dropped on arrival with its tracestate.
func TestTraceContextReachesTheWorker(t *testing.T) {
	ex, err := subprocess.New(subprocess.Options{Workers: 1})
	require.NoError(t, err)
	defer ex.Shutdown(context.Background())
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct{ tp, ts, wantTP, wantTS string }{
		{tp, "vendor=x", tp, "vendor=x"},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "vendor=x", "", ""},
		{"", "", "", ""},
	} {
		var out bytes.Buffer
		logger := hclog.New(&hclog.LoggerOptions{Output: &out, JSONFormat: true, Level: hclog.Info})
		call := executor.Call{Handler: traceTask, RunID: "r", Logger: logger}
		if tc.tp != "" {
			call.Trace = &executor.Trace{Parent: tc.tp, State: tc.ts}
		}
		v, err := executor.Run(context.Background(), ex, call)
		require.NoError(t, err)
		assert.Equal(t, [2]string{tc.wantTP, tc.wantTS}, v, tc.tp)
		var line map[string]any
		require.NoError(t, json.Unmarshal(out.Bytes(), &line), out.String())
		assert.Equal(t, "traced", line["@message"])
		if tc.wantTP != "" {
			assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", line["trace_id"])
			assert.Equal(t, "00f067aa0ba902b7", line["span_id"])
		} else {
			assert.NotContains(t, line, "trace_id")
			assert.NotContains(t, line, "span_id")
		}
	}
}
