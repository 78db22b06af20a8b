package flow

import (
	"fmt"
	"strings"

	"github.com/flowline-go/flowline/task"
)

// stateColors fills graph nodes by state.
var stateColors = [...]string{
	task.Pending:       "#ffffff",
	task.Running:       "#fff2cc",
	task.Retrying:      "#fce8b2",
	task.Success:       "#b7e1cd",
	task.Failed:        "#f4c7c3",
	task.TimedOut:      "#f9cb9c",
	task.Skipped:       "#cfe2f3",
	task.TriggerFailed: "#ead1dc",
	task.Cancelled:     "#d9d9d9",
	task.Cached:        "#d9ead3",
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
// mapped node also with its number of children).
func (r *Result) DOT() string { return r.flow.dot(r) }

// Mermaid returns the flow as a Mermaid flowchart: a box per node (a
// subroutine box for mapped nodes), a parallelogram per parameter, solid
// arrows for data and dotted arrows for ordering-only dependencies.
func (f *Flow) Mermaid() string { return f.mermaid(nil) }

// Mermaid returns the run's flow as a Mermaid flowchart like
// Flow.Mermaid, each node styled with a class named after its final state.
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
	for s, ids := range classes {
		if len(ids) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  classDef %v fill:%s,stroke:#555\n", task.State(s), colorOf(task.State(s)))
		fmt.Fprintf(&b, "  class %s %v\n", strings.Join(ids, ","), task.State(s))
	}
	return b.String()
}
