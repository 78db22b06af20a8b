package cluster

// PullInbox returns the prefix of the subjects w's pull requests reply
// to, for tests that play a request the worker took for lost.
func PullInbox(w *Worker) string { return w.pull.inbox }
