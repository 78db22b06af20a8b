package flow

import (
	"context"

	"github.com/flowline-go/flowline/store"
)

// loadTrace returns the trace context recorded for a resumed run, or
// empty strings when the store keeps none. A store failure here is not the
// run's: the run goes on, in a new trace.
func (d *durable) loadTrace(ctx context.Context) (traceParent, traceState string) {
	ts, ok := d.st.(store.TraceStore)
	if !ok {
		return "", ""
	}
	tp, st, err := ts.RunTrace(ctx, d.runID)
	if err != nil {
		return "", ""
	}
	return tp, st
}

// saveTrace records the run's trace context when the store keeps it and
// none was recorded before (was): every resume of a run is then a child
// of its first run's span. Like loadTrace, a failure costs the trace,
// never the run.
func (d *durable) saveTrace(ctx context.Context, traceParent, traceState string, was string) {
	ts, ok := d.st.(store.TraceStore)
	if !ok || traceParent == "" || was != "" {
		return
	}
	_ = ts.SetRunTrace(ctx, d.runID, traceParent, traceState)
}
