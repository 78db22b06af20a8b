package sqlstore

// traceSchema is the table of runs' trace contexts (store.TraceStore): one
// row per run that has one, deleted with its run.
func traceSchema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS flowline_run_traces (
			run_id TEXT PRIMARY KEY, traceparent TEXT NOT NULL, tracestate TEXT NOT NULL)`,
	}
}
