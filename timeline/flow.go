package timeline

import "github.com/flowline-go/flowline/flow"

// FromRun builds the timeline of a flow run: FromResults of its task runs,
// with the flow's name, the run id and the run's duration for the title.
// A nil Result (Run failed before any task started) gives an empty
// timeline.
func FromRun(res *flow.Result) *Timeline {
	if res == nil {
		return FromResults(nil)
	}
	tl := FromResults(res.TaskResults())
	tl.Flow, tl.Run, tl.Total = res.Flow, res.RunID, res.Duration()
	return tl
}
