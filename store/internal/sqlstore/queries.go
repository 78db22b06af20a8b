package sqlstore

// queries are the statements, with placeholders for the dialect.
type queries struct {
	runOwner, insertRun, getRun, runLease, updateRun, touchRun string
	unclaim, dropPlaceholder, taskRuns, attempts, changes      string
	setLease, release, placeholder, getCache, claim            string
	cacheEntries, countCache, invalidate                       string
	deleteTaskRuns, deleteAttempts, deleteChanges, deleteRuns  string
	deleteExpiredCache                                         string
	deleteTraces                                               string
}

// deletable selects the runs DeleteRuns removes: last updated before the
// cutoff (first ?), lease not live at now (second ?).
const deletable = `SELECT id FROM flowline_runs WHERE updated < ? AND (owner = '' OR lease_expires < ?)`

func makeQueries(rebind func(string) string, forUpdate string) queries {
	q := queries{
		runOwner:        `SELECT owner, created FROM flowline_runs WHERE id = ?`,
		insertRun:       `INSERT INTO flowline_runs (` + runCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		getRun:          `SELECT ` + runSelect + ` FROM flowline_runs WHERE id = ?`,
		runLease:        `SELECT owner, lease_expires FROM flowline_runs WHERE id = ? ` + forUpdate,
		updateRun:       `UPDATE flowline_runs SET state = ?, err_class = ?, err_message = ?, ended = ?, updated = ? WHERE id = ?`,
		touchRun:        `UPDATE flowline_runs SET updated = ? WHERE id = ?`,
		unclaim:         `UPDATE flowline_cache SET claim_owner = '', claim_expires = 0 WHERE key = ? AND claim_owner = ?`,
		dropPlaceholder: `DELETE FROM flowline_cache WHERE key = ? AND value IS NULL AND claim_owner = ''`,
		taskRuns: `SELECT label, state, value, err_class, err_message, attempts, start_t, end_t, cache_key
			FROM flowline_task_runs WHERE run_id = ? ORDER BY label`,
		attempts: `SELECT label, n, state, start_t, end_t, err_class, err_message, worker
			FROM flowline_attempts WHERE run_id = ? ORDER BY label, n`,
		changes: `SELECT seq, label, attempt, from_state, to_state, err_class, err_message, t
			FROM flowline_changes WHERE run_id = ? ORDER BY seq`,
		setLease:    `UPDATE flowline_runs SET owner = ?, lease_expires = ?, updated = ? WHERE id = ?`,
		release:     `UPDATE flowline_runs SET owner = '', lease_expires = 0 WHERE id = ? AND owner = ?`,
		placeholder: `INSERT INTO flowline_cache (key, value, created, expires, claim_owner, claim_expires) VALUES (?, NULL, 0, 0, '', 0) ON CONFLICT (key) DO NOTHING`,
		getCache:    `SELECT value, created, expires, claim_owner, claim_expires FROM flowline_cache WHERE key = ? ` + forUpdate,
		claim:       `UPDATE flowline_cache SET value = NULL, created = 0, expires = 0, claim_owner = ?, claim_expires = ? WHERE key = ?`,
		cacheEntries: `SELECT key, value, created, expires FROM flowline_cache
			WHERE substr(key, 1, ?) = ? AND value IS NOT NULL AND (expires = 0 OR expires > ?) ORDER BY key`,
		countCache:         `SELECT count(*) FROM flowline_cache WHERE substr(key, 1, ?) = ? AND value IS NOT NULL`,
		invalidate:         `DELETE FROM flowline_cache WHERE substr(key, 1, ?) = ?`,
		deleteTaskRuns:     `DELETE FROM flowline_task_runs WHERE run_id IN (` + deletable + `)`,
		deleteAttempts:     `DELETE FROM flowline_attempts WHERE run_id IN (` + deletable + `)`,
		deleteChanges:      `DELETE FROM flowline_changes WHERE run_id IN (` + deletable + `)`,
		deleteTraces:       `DELETE FROM flowline_run_traces WHERE run_id IN (` + deletable + `)`,
		deleteRuns:         `DELETE FROM flowline_runs WHERE id IN (` + deletable + `)`,
		deleteExpiredCache: `DELETE FROM flowline_cache WHERE expires <> 0 AND expires < ? AND claim_owner = ''`,
	}
	for _, p := range []*string{&q.runOwner, &q.insertRun, &q.getRun, &q.runLease, &q.updateRun, &q.touchRun,
		&q.unclaim, &q.dropPlaceholder,
		&q.taskRuns, &q.attempts, &q.changes, &q.setLease, &q.release, &q.placeholder, &q.getCache, &q.claim,
		&q.cacheEntries, &q.countCache, &q.invalidate, &q.deleteTaskRuns, &q.deleteAttempts, &q.deleteChanges,
		&q.deleteRuns, &q.deleteExpiredCache, &q.deleteTraces} {
		*p = rebind(*p)
	}
	return q
}
