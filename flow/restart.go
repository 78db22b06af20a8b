package flow

import (
	"sort"

	"github.com/flowline-go/flowline/store"
)

// restartBatch is the batch that begins a restart: the run is recorded as
// running again, and each task run the restart runs again is recorded as
// Pending (its attempts kept), in one transaction. So a restart that stops
// before it ends (its process dies, its store goes away) is resumed as the
// restart it was: a resume runs those task runs, instead of keeping the
// failures recorded before the restart as final.
func restartBatch(runID, owner string, prior map[string]*prior) *store.Batch {
	b := &store.Batch{RunID: runID, Owner: owner, Run: &store.RunUpdate{State: "Running"}}
	for label, p := range prior {
		if !p.keep {
			b.TaskRuns = append(b.TaskRuns, store.TaskRun{Label: label, State: "Pending", Attempts: len(p.attempts)})
		}
	}
	sort.Slice(b.TaskRuns, func(i, j int) bool { return b.TaskRuns[i].Label < b.TaskRuns[j].Label })
	return b
}
