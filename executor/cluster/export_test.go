package cluster

// PullInbox returns the prefix of the subjects w's pull requests reply
// to, for tests that play a request the worker took for lost.
func PullInbox(w *Worker) string { return w.pull.inbox }

// IdleSlots returns how many of w's slots wait for a call.
func IdleSlots(w *Worker) int {
	w.pull.mu.Lock()
	defer w.pull.mu.Unlock()
	return len(w.pull.idle)
}

// StoredAck is storedAck, for its table test.
var StoredAck = storedAck
