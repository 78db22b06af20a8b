package store

import "context"

// TraceStore is implemented by stores that keep a run's W3C trace context
// (every store of this module does: SQLite and Postgres). A durable flow
// run with an observer records its trace context there, and a resumed or
// restarted run reads it back so that its spans join the same trace. A
// Store without it runs durable flows as well; their resumes start a new
// trace.
type TraceStore interface {
	// SetRunTrace records the trace context of run id, replacing any
	// recorded before. It fails with ErrNotFound for an unknown run.
	// DeleteRuns removes it with its run.
	SetRunTrace(ctx context.Context, id, traceParent, traceState string) error

	// RunTrace returns the trace context recorded for run id, or empty
	// strings for a run without one. It fails with ErrNotFound for an
	// unknown run.
	RunTrace(ctx context.Context, id string) (traceParent, traceState string, err error)
}
