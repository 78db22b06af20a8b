package flow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// Graph gives a flow's structure for drawing it: nodes in topological
// order, with their data and ordering-only edges and the parameters they
// read.
func ExampleFlow_Graph() {
	split := task.New("split", func(_ context.Context, s string) ([]string, error) { return strings.Fields(s), nil }, task.Options{})
	upper := task.New("upper", func(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil }, task.Options{})
	audit := task.New("audit", func(_ context.Context, _ struct{}) (int, error) { return 0, nil }, task.Options{})

	b := flow.New("shout", flow.Options{})
	text := flow.Param[string](b, "text")
	words := flow.Add(b, split, text)
	loud := flow.Map(b, upper, words)
	flow.Add(b, audit, nil).After(loud)
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	for _, n := range f.Graph() {
		fmt.Printf("%s (task %s, mapped %v) params %v:", n.Name, n.Task, n.Mapped, n.Params)
		for _, e := range n.Upstream {
			fmt.Printf(" <-%s data=%v", e.From, e.Data)
		}
		fmt.Println()
	}
	// Output:
	// split (task split, mapped false) params [text]:
	// upper (task upper, mapped true) params []: <-split data=true
	// audit (task audit, mapped false) params []: <-upper data=false
}

func TestGraphIsACopyInTopologicalOrder(t *testing.T) {
	a := task.New("a", func(_ context.Context, _ struct{}) (int, error) { return 1, nil }, task.Options{})
	inc := task.New("inc", func(_ context.Context, x int) (int, error) { return x + 1, nil }, task.Options{})
	b := flow.New("order", flow.Options{})
	first := flow.Add(b, a, nil)
	// "late" is created before "early" but waits for it: topological order
	// puts it after.
	late := flow.Add(b, inc, first).Named("late")
	early := flow.Add(b, inc, first).Named("early")
	late.After(early)
	f, err := b.Build()
	assert.NoError(t, err)
	g := f.Graph()
	var names []string
	for _, n := range g {
		names = append(names, n.Name)
	}
	assert.Equal(t, []string{"a", "early", "late"}, names)
	assert.Equal(t, []flow.GraphEdge{{From: "a", Data: true}, {From: "early", Data: false}}, g[2].Upstream)
	g[2].Upstream[0].From = "changed"
	assert.Equal(t, "a", f.Graph()[2].Upstream[0].From, "the caller's copy")
	assert.Equal(t, "#f28b82", flow.StateColor(task.Failed))
	assert.Equal(t, "#ffffff", flow.StateColor(task.State(200)))
}
