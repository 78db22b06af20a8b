package sqlstore

// reserveSchema is the table of runs' reservations (store.Reservation):
// one row per run and mapped node, deleted with its run.
func reserveSchema(integer string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS flowline_reservations (
			run_id TEXT NOT NULL, node TEXT NOT NULL, children ` + integer + ` NOT NULL, t ` + integer + ` NOT NULL,
			PRIMARY KEY (run_id, node))`,
	}
}
