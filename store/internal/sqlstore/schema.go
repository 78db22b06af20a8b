package sqlstore

// Schema returns the DDL of the schema, with blob as the type of binary
// columns and integer as the type of 64-bit integers (times are Unix
// nanoseconds, 0 for none).
func Schema(blob, integer string) []string {
	return append([]string{
		`CREATE TABLE IF NOT EXISTS flowline_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS flowline_runs (
			id TEXT PRIMARY KEY, flow TEXT NOT NULL, flow_hash TEXT NOT NULL, params ` + blob + ` NOT NULL,
			state TEXT NOT NULL, err_class TEXT NOT NULL, err_message TEXT NOT NULL,
			owner TEXT NOT NULL, lease_expires ` + integer + ` NOT NULL,
			created ` + integer + ` NOT NULL, updated ` + integer + ` NOT NULL, ended ` + integer + ` NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS flowline_runs_updated ON flowline_runs (updated)`,
		`CREATE TABLE IF NOT EXISTS flowline_task_runs (
			run_id TEXT NOT NULL, label TEXT NOT NULL, state TEXT NOT NULL, value ` + blob + `,
			err_class TEXT NOT NULL, err_message TEXT NOT NULL, attempts ` + integer + ` NOT NULL,
			start_t ` + integer + ` NOT NULL, end_t ` + integer + ` NOT NULL, cache_key TEXT NOT NULL,
			PRIMARY KEY (run_id, label))`,
		`CREATE TABLE IF NOT EXISTS flowline_attempts (
			run_id TEXT NOT NULL, label TEXT NOT NULL, n ` + integer + ` NOT NULL, state TEXT NOT NULL,
			start_t ` + integer + ` NOT NULL, end_t ` + integer + ` NOT NULL,
			err_class TEXT NOT NULL, err_message TEXT NOT NULL, worker TEXT NOT NULL,
			PRIMARY KEY (run_id, label, n))`,
		`CREATE TABLE IF NOT EXISTS flowline_changes (
			run_id TEXT NOT NULL, seq ` + integer + ` NOT NULL, label TEXT NOT NULL, attempt ` + integer + ` NOT NULL,
			from_state TEXT NOT NULL, to_state TEXT NOT NULL, err_class TEXT NOT NULL, err_message TEXT NOT NULL,
			t ` + integer + ` NOT NULL, PRIMARY KEY (run_id, seq))`,
		`CREATE TABLE IF NOT EXISTS flowline_cache (
			key TEXT PRIMARY KEY, value ` + blob + `, created ` + integer + ` NOT NULL, expires ` + integer + ` NOT NULL,
			claim_owner TEXT NOT NULL, claim_expires ` + integer + ` NOT NULL)`,
	}, append(append(append(limitSchema(integer), requestsSchema(integer)...), traceSchema()...), reserveSchema(integer)...)...)
}
