package sqlstore

// requestsSchema is the table of pending requests (store.RequestCancel,
// store.RequestRetry): at most one per run and kind, with the time it was
// made (Unix nanoseconds). A table of its own, not columns of
// flowline_runs, so that stores written before it gain it by
// CREATE TABLE IF NOT EXISTS.
func requestsSchema(integer string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS flowline_requests (
			run_id TEXT NOT NULL, kind TEXT NOT NULL, requested ` + integer + ` NOT NULL,
			PRIMARY KEY (run_id, kind))`,
	}
}
