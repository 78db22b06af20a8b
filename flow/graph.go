package flow

import (
	"fmt"
	"strings"

	"github.com/flowline-go/flowline/task"
)

// stateColors fills graph nodes by state. Each final state has a hue of
// its own, and they differ in lightness too; TriggerFailed (never ran:
// its upstream refused it) is violet and dashed, never a paler Failed.
var stateColors = [...]string{
	task.Pending:       "#ffffff",
	task.Running:       "#fff2cc",
	task.Retrying:      "#fce8b2",
	task.Success:       "#b7e1cd",
	task.Failed:        "#f28b82",
	task.TimedOut:      "#fbbc6a",
	task.Skipped:       "#cfe2f3",
	task.TriggerFailed: "#d7b8f3",
	task.Cancelled:     "#d9d9d9",
	task.Cached:        "#d9ead3",
	task.Waiting:       "#e3e7f4",
}

// dashed says whether a state's node has a dashed border: the states of
// task runs that never ran an attempt of their own choosing.
func dashed(s task.State) bool { return s == task.TriggerFailed || s == task.Cancelled }

// legendStates are the states a run's legend lists, when they occur.
var legendStates = []task.State{task.Success, task.Failed, task.TimedOut, task.Skipped, task.TriggerFailed, task.Cancelled, task.Running, task.Retrying, task.Waiting, task.Pending}

// statesOf returns the legend's states that the nodes of f have in res
// (mapped children are not drawn: their states are summed up by their
// node's).
func (f *Flow) statesOf(res *Result) []task.State {
	var seen [len(stateColors)]bool
	for _, id := range f.order {
		if s := res.Tasks[res.index(id)].State; int(s) < len(seen) {
			seen[s] = true
		}
	}
	var out []task.State
	for _, s := range legendStates {
		if seen[s] {
			out = append(out, s)
		}
	}
	return out
}

func colorOf(s task.State) string {
	if int(s) < len(stateColors) {
		return stateColors[s]
	}
	return "#ffffff"
}

// DOT returns the flow as a Graphviz digraph: a box per node (a double
// border for mapped nodes), a parallelogram per parameter, solid edges for
// data and dashed edges for ordering-only dependencies.
func (f *Flow) DOT() string { return f.dot(nil) }

// DOT returns the run's flow as a Graphviz digraph like Flow.DOT, each
// node filled with the colour of its final state and labelled with it (a
// mapped node also with its number of children), and a legend (a cluster
// named "legend") of the states that occur, with their colours.
func (r *Result) DOT() string { return r.flow.dot(r) }

// Mermaid returns the flow as a Mermaid flowchart: a box per node (a
// subroutine box for mapped nodes), a parallelogram per parameter, solid
// arrows for data and dotted arrows for ordering-only dependencies.
func (f *Flow) Mermaid() string { return f.mermaid(nil) }

// Mermaid returns the run's flow as a Mermaid flowchart like
// Flow.Mermaid, each node styled with a class named after its final state,
// and a legend (a subgraph named "legend") of the states that occur.
func (r *Result) Mermaid() string { return r.flow.mermaid(r) }

// nodeLabel returns node id's label lines and, after a run, its state.
func (f *Flow) nodeLabel(id int32, res *Result) (lines []string, state task.State, ran bool) {
	nd := &f.nodes[id]
	name := nd.name
	if res == nil {
		if nd.kind == mappedNode {
			name += " (map)"
		}
		return []string{name}, task.Pending, false
	}
	t := &res.Tasks[res.index(id)]
	if t.Mapped {
		name += fmt.Sprintf(" (map ×%d)", t.Children)
	}
	return []string{name, t.State.String()}, t.State, true
}

func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

func (f *Flow) dot(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(f.name))
	b.WriteString("  rankdir=LR;\n")
	b.WriteString("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\"];\n")
	for i, p := range f.params {
		fmt.Fprintf(&b, "  p%d [label=%s, shape=parallelogram, style=filled, fillcolor=\"#f1f3f4\"];\n", i, dotQuote(p.name))
	}
	for _, id := range f.order {
		lines, state, ran := f.nodeLabel(id, res)
		attrs := "label=" + dotQuote(strings.Join(lines, "\n"))
		if f.nodes[id].kind == mappedNode {
			attrs += ", peripheries=2"
		}
		if ran {
			attrs += fmt.Sprintf(", fillcolor=%q", colorOf(state))
			if dashed(state) {
				attrs += `, style="rounded,filled,dashed"`
			}
		}
		fmt.Fprintf(&b, "  n%d [%s];\n", id, attrs)
	}
	for _, id := range f.order {
		for _, p := range f.nodes[id].params {
			fmt.Fprintf(&b, "  p%d -> n%d;\n", p, id)
		}
		for k := f.upAt[id]; k < f.upAt[id+1]; k++ {
			if f.upData[k] {
				fmt.Fprintf(&b, "  n%d -> n%d;\n", f.up[k], id)
			} else {
				fmt.Fprintf(&b, "  n%d -> n%d [style=dashed];\n", f.up[k], id)
			}
		}
	}
	if res != nil {
		b.WriteString("  subgraph cluster_legend {\n")
		b.WriteString("    label=\"legend\"; fontname=\"Helvetica\"; fontsize=10; style=\"rounded,dashed\"; color=\"#999999\";\n")
		states := f.statesOf(res)
		for _, s := range states {
			style := "rounded,filled"
			if dashed(s) {
				style += ",dashed"
			}
			fmt.Fprintf(&b, "    legend_%v [label=%q, fontsize=10, height=0.3, style=%q, fillcolor=%q];\n", s, s.String(), style, colorOf(s))
		}
		for i := 1; i < len(states); i++ { // in one row
			fmt.Fprintf(&b, "    legend_%v -> legend_%v [style=invis];\n", states[i-1], states[i])
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func mermaidQuote(s string) string {
	return `"` + strings.NewReplacer(`"`, "#quot;", "\n", "<br/>").Replace(s) + `"`
}

func (f *Flow) mermaid(res *Result) string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for i, p := range f.params {
		fmt.Fprintf(&b, "  p%d[/%s/]\n", i, mermaidQuote(p.name))
	}
	var classes [len(stateColors)][]string
	for _, id := range f.order {
		lines, state, ran := f.nodeLabel(id, res)
		label := mermaidQuote(strings.Join(lines, "\n"))
		if f.nodes[id].kind == mappedNode {
			fmt.Fprintf(&b, "  n%d[[%s]]\n", id, label)
		} else {
			fmt.Fprintf(&b, "  n%d[%s]\n", id, label)
		}
		if ran && int(state) < len(classes) {
			classes[state] = append(classes[state], fmt.Sprintf("n%d", id))
		}
	}
	for _, id := range f.order {
		for _, p := range f.nodes[id].params {
			fmt.Fprintf(&b, "  p%d --> n%d\n", p, id)
		}
		for k := f.upAt[id]; k < f.upAt[id+1]; k++ {
			arrow := "-->"
			if !f.upData[k] {
				arrow = "-.->"
			}
			fmt.Fprintf(&b, "  n%d %s n%d\n", f.up[k], arrow, id)
		}
	}
	if res == nil {
		return b.String()
	}
	b.WriteString("  subgraph legend [legend]\n    direction LR\n")
	states := f.statesOf(res)
	for _, s := range states {
		fmt.Fprintf(&b, "    legend_%v[\"%v\"]\n", s, s)
		classes[s] = append(classes[s], fmt.Sprintf("legend_%v", s))
	}
	for i := 1; i < len(states); i++ { // in one row, in order
		fmt.Fprintf(&b, "    legend_%v ~~~ legend_%v\n", states[i-1], states[i])
	}
	b.WriteString("  end\n")
	for s, ids := range classes {
		if len(ids) == 0 {
			continue
		}
		dash := ""
		if dashed(task.State(s)) {
			dash = ",stroke-dasharray:5 3"
		}
		fmt.Fprintf(&b, "  classDef %v fill:%s,stroke:#555%s\n", task.State(s), colorOf(task.State(s)), dash)
		fmt.Fprintf(&b, "  class %s %v\n", strings.Join(ids, ","), task.State(s))
	}
	return b.String()
}
