package timeline_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/task"
	"github.com/flowline-go/flowline/timeline"
)

// A timeline from task results: one lane per place attempts ran, a row
// per overlapping attempt. WriteSVG and WriteTrace draw it.
func ExampleFromResults() {
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	results := []task.Result{
		{Task: "fetch", Attempts: []task.Attempt{
			{N: 1, Start: at(0), End: at(100), Worker: "pool/0", Err: &executor.TimeoutError{Task: "fetch", Limit: 100 * time.Millisecond}},
			{N: 2, Start: at(150), End: at(180), Worker: "pool/1"},
		}},
		{Task: "parse", Attempts: []task.Attempt{{N: 1, Start: at(180), End: at(200), Worker: "pool/0"}}},
	}
	tl := timeline.FromResults(results)
	for _, lane := range tl.Lanes {
		for _, s := range lane.Slices {
			fmt.Printf("%s: %s #%d %v-%v %s\n", lane.Name, s.Task, s.Attempt, s.Start, s.End, s.Outcome)
		}
	}
	var svg strings.Builder
	_ = tl.WriteSVG(&svg) // or WriteTrace, for chrome://tracing and Perfetto
	fmt.Println(strings.HasPrefix(svg.String(), "<svg"), tl.Span)
	// Output:
	// pool/0: fetch #1 0s-100ms timed out
	// pool/0: parse #1 180ms-200ms success
	// pool/1: fetch #2 150ms-180ms success
	// true 200ms
}
