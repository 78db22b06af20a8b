package flow

import "github.com/flowline-go/flowline/task"

// GraphNode is one node of a flow as Flow.Graph describes it, for tools
// that draw a flow their own way (the dashboard package does).
type GraphNode struct {
	Name   string // the node's name, unique in the flow: its task runs' label
	Task   string // its task's name
	Mapped bool   // runs once per element; its children's labels are Name[i]
	// Upstream are the nodes it waits for, each once, in the order the
	// flow declared them.
	Upstream []GraphEdge
	Params   []string // the names of the parameters it reads
}

// GraphEdge is an edge into a node from the upstream node From.
type GraphEdge struct {
	From string // the upstream node's name
	Data bool   // it carries From's result; false for an ordering-only edge (After)
}

// Graph returns the flow's nodes in a topological order (every node after
// its upstream nodes; creation order where that is one), each with its
// edges and parameters. The slice is new on every call: changing it
// changes nothing in the flow. A flow without nodes gives none.
func (f *Flow) Graph() []GraphNode {
	out := make([]GraphNode, 0, len(f.order))
	for _, id := range f.order {
		nd := &f.nodes[id]
		g := GraphNode{Name: nd.name, Task: nd.spec.Name(), Mapped: nd.kind == mappedNode}
		for k := f.upAt[id]; k < f.upAt[id+1]; k++ {
			g.Upstream = append(g.Upstream, GraphEdge{From: f.nodes[f.up[k]].name, Data: f.upData[k]})
		}
		for _, p := range nd.params {
			g.Params = append(g.Params, f.params[p].name)
		}
		out = append(out, g)
	}
	return out
}

// StateColor returns the fill colour, as "#rrggbb", that DOT and Mermaid
// give a node in state s, so that other pictures of a run (the dashboard's)
// use the same colours; an unknown state gives white.
func StateColor(s task.State) string { return colorOf(s) }
