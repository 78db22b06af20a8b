package sqlstore

// limitSchema is the DDL of the limits' tables (store.Limiter): a row per
// concurrency slot of a (limit, key), and a row per token bucket, whose
// tat is the bucket's theoretical arrival time (GCRA), in Unix
// nanoseconds.
func limitSchema(integer string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS flowline_limit_slots (
			name TEXT NOT NULL, key TEXT NOT NULL, slot ` + integer + ` NOT NULL,
			owner TEXT NOT NULL, holder TEXT NOT NULL, expires ` + integer + ` NOT NULL,
			PRIMARY KEY (name, key, slot))`,
		`CREATE INDEX IF NOT EXISTS flowline_limit_slots_owner ON flowline_limit_slots (owner)`,
		`CREATE TABLE IF NOT EXISTS flowline_limit_buckets (
			name TEXT NOT NULL, key TEXT NOT NULL, tat ` + integer + ` NOT NULL,
			PRIMARY KEY (name, key))`,
	}
}
