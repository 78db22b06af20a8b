package dashboard

import (
	"bytes"
	"fmt"
	"html"
	"slices"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// The graph is drawn left to right in layers (a simple Sugiyama layout):
// a node's layer is one more than its deepest upstream's, an edge that
// spans several layers passes through a placeholder in each layer between
// (so it never runs through a node), and a few sweeps order each layer by
// the mean position of its neighbours to keep crossings few.

const (
	gNodeH    = 46  // a node box's height
	gRowPitch = 62  // between the middles of two slots in a layer
	gColGap   = 56  // between two layers
	gPad      = 16  // around the picture
	gMinW     = 120 // the narrowest node box
	gChar     = 7.4 // width of a character of the 12px labels, for sizing boxes
	gLegendH  = 34
	gParamW   = 96
)

// gNode is one slot of the layout: a task node, a parameter, or a
// placeholder an edge passes through.
type gNode struct {
	name   string
	kind   int // gTask, gParam, gDummy
	layer  int
	pos    float64 // order within the layer, then its slot
	w      float64
	x, y   float64 // left edge, middle
	row    *taskRow
	mapped bool
	task   string
	in     []int // slots feeding this one
}

const (
	gTask = iota
	gParam
	gDummy
)

// gEdge is an edge of the flow, through its placeholders: path[0] is the
// upstream, path[len-1] the node.
type gEdge struct {
	path []int
	data bool
}

// drawGraph writes the flow's graph as an SVG, each node filled with its
// task run's state colour (flow.StateColor) and linked to its row in the
// task table (runURL + "#task-" + name).
func drawGraph(b *bytes.Buffer, g []flow.GraphNode, rows []*taskRow, runURL string) {
	byLabel := map[string]*taskRow{}
	for _, r := range rows {
		byLabel[r.Label] = r
	}
	var nodes []*gNode
	index := map[string]int{}
	params := map[string]int{}
	for _, n := range g {
		for _, p := range n.Params {
			if _, ok := params[p]; !ok {
				params[p] = len(nodes)
				nodes = append(nodes, &gNode{name: p, kind: gParam, w: gParamW})
			}
		}
	}
	for _, n := range g {
		index[n.Name] = len(nodes)
		nd := &gNode{name: n.Name, kind: gTask, row: byLabel[n.Name], mapped: n.Mapped, task: n.Task}
		for _, p := range n.Params {
			nd.in = append(nd.in, params[p])
		}
		nodes = append(nodes, nd)
	}
	var edges []gEdge
	for _, n := range g {
		to := index[n.Name]
		for _, e := range n.Upstream {
			edges = append(edges, gEdge{path: []int{index[e.From], to}, data: e.Data})
		}
		for _, p := range n.Params {
			edges = append(edges, gEdge{path: []int{params[p], to}, data: true})
		}
	}
	// Layers: g is in topological order, so one pass does.
	for _, e := range edges {
		nodes[e.path[1]].in = appendUnique(nodes[e.path[1]].in, e.path[0])
	}
	for i, nd := range nodes {
		if nd.kind != gTask {
			continue
		}
		for _, u := range nd.in {
			nodes[i].layer = max(nodes[i].layer, nodes[u].layer+1)
		}
	}
	// Placeholders for long edges.
	for k := range edges {
		e := &edges[k]
		from, to := e.path[0], e.path[1]
		path := []int{from}
		for l := nodes[from].layer + 1; l < nodes[to].layer; l++ {
			path = append(path, len(nodes))
			nodes = append(nodes, &gNode{kind: gDummy, layer: l, in: []int{path[len(path)-2]}})
		}
		e.path = append(path, to)
	}
	// Rebuild each slot's inputs from the paths.
	for _, nd := range nodes {
		nd.in = nd.in[:0]
	}
	out := make([][]int, len(nodes))
	for _, e := range edges {
		for i := 1; i < len(e.path); i++ {
			nodes[e.path[i]].in = appendUnique(nodes[e.path[i]].in, e.path[i-1])
			out[e.path[i-1]] = appendUnique(out[e.path[i-1]], e.path[i])
		}
	}
	nLayers := 0
	for _, nd := range nodes {
		nLayers = max(nLayers, nd.layer+1)
	}
	layers := make([][]int, nLayers)
	for i, nd := range nodes {
		nd.pos = float64(len(layers[nd.layer]))
		layers[nd.layer] = append(layers[nd.layer], i)
	}
	// Order: barycentre sweeps, down then up.
	bary := func(l []int, nbrs func(i int) []int) {
		for _, i := range l {
			ns := nbrs(i)
			if len(ns) == 0 {
				continue
			}
			s := 0.0
			for _, j := range ns {
				s += nodes[j].pos
			}
			nodes[i].pos = s / float64(len(ns))
		}
		slices.SortStableFunc(l, func(a, b int) int {
			switch {
			case nodes[a].pos < nodes[b].pos:
				return -1
			case nodes[a].pos > nodes[b].pos:
				return 1
			}
			return 0
		})
		for k, i := range l {
			nodes[i].pos = float64(k)
		}
	}
	for range 4 {
		for l := 1; l < nLayers; l++ {
			bary(layers[l], func(i int) []int { return nodes[i].in })
		}
		for l := nLayers - 2; l >= 0; l-- {
			bary(layers[l], func(i int) []int { return out[i] })
		}
	}
	// Sizes and places.
	maxSlots := 0
	for _, l := range layers {
		maxSlots = max(maxSlots, len(l))
	}
	x := float64(gPad)
	for _, l := range layers {
		colW := 0.0
		for _, i := range l {
			nd := nodes[i]
			if nd.kind == gTask {
				nd.w = max(gMinW, textW(nd.name, nd.mapped)+28, gChar*float64(len(nodeDetail(nd)))+24)
			}
			colW = max(colW, nd.w)
		}
		top := float64(gPad) + float64(maxSlots-len(l))*gRowPitch/2
		for k, i := range l {
			nd := nodes[i]
			if nd.kind == gDummy {
				nd.w = colW
			}
			nd.x = x + (colW-nd.w)/2
			nd.y = top + float64(k)*gRowPitch + gRowPitch/2
		}
		x += colW + gColGap
	}
	width := max(x-gColGap+gPad, 320)
	legend := legendStates(rows)
	ordering := slices.ContainsFunc(edges, func(e gEdge) bool { return !e.data })
	height := float64(gPad*2) + float64(maxSlots)*gRowPitch + gLegendH

	fmt.Fprintf(b, `<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12" role="img" aria-label="flow graph">`,
		width, height, width, height)
	b.WriteString(`<defs><marker id="g-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#667085"/></marker></defs>`)
	// Edges under the nodes.
	for _, e := range edges {
		fromParam := nodes[e.path[0]].kind == gParam
		var d bytes.Buffer
		first := nodes[e.path[0]]
		px, py := first.x+first.w, first.y
		fmt.Fprintf(&d, "M%.1f,%.1f", px, py)
		for k := 1; k < len(e.path); k++ {
			nd := nodes[e.path[k]]
			nx := nd.x
			if k == len(e.path)-1 {
				nx -= 2 // room for the arrowhead
			}
			mid := (px + nx) / 2
			fmt.Fprintf(&d, " C%.1f,%.1f %.1f,%.1f %.1f,%.1f", mid, py, mid, nd.y, nx, nd.y)
			px, py = nd.x+nd.w, nd.y
			if nd.kind == gDummy {
				fmt.Fprintf(&d, " L%.1f,%.1f", px, py)
			}
		}
		dash := ""
		if !e.data {
			dash = ` stroke-dasharray="5 4"`
		}
		stroke, width := "#98a2b3", 1.6
		if fromParam { // parameters may feed many nodes: their edges stay in the background
			stroke, width = "#d0d5dd", 1.1
		}
		fmt.Fprintf(b, `<path class="edge" d="%s" fill="none" stroke="%s" stroke-width="%.1f"%s marker-end="url(#g-arrow)"/>`, d.String(), stroke, width, dash)
	}
	for _, nd := range nodes {
		switch nd.kind {
		case gParam:
			y0 := nd.y - 15
			fmt.Fprintf(b, `<g class="param"><title>parameter %s</title><polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="#eef1f5" stroke="#98a2b3"/>`,
				esc(nd.name), nd.x+10, y0, nd.x+nd.w, y0, nd.x+nd.w-10, y0+30, nd.x, y0+30)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#344054">%s</text></g>`, nd.x+nd.w/2, nd.y+4, esc(clipText(nd.name, nd.w-20)))
		case gTask:
			drawNode(b, nd, runURL)
		}
	}
	// Legend.
	lx, ly := float64(gPad), height-gLegendH+8
	for _, s := range legend {
		st, _ := parseState(s)
		dash := ""
		if st == task.TriggerFailed || st == task.Cancelled {
			dash = ` stroke-dasharray="3 2"`
		}
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="14" height="14" rx="3" fill="%s" stroke="#667085"%s/>`, lx, ly, flow.StateColor(st), dash)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#344054">%s</text>`, lx+19, ly+11, esc(s))
		lx += 19 + textW(s, false) + 18
	}
	if ordering {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#667085">- - ordering only</text>`, lx+8, ly+11)
	}
	b.WriteString("</svg>")
}

// drawNode draws a task node: a box in its state's colour (a double box
// for a mapped node; dashed when it never ran), its name and a detail
// line, a tooltip, and a link to its table row.
func drawNode(b *bytes.Buffer, nd *gNode, runURL string) {
	state := task.Pending
	if nd.row != nil {
		state, _ = parseState(nd.row.State)
	}
	y0 := nd.y - gNodeH/2
	cls := "node state-" + state.String()
	fmt.Fprintf(b, `<a href="%s#task-%s" class="%s" data-task="%s"><title>%s</title>`, esc(runURL), esc(anchor(nd.name)), cls, esc(nd.name), esc(nodeTooltip(nd)))
	dash := ""
	if state == task.TriggerFailed || state == task.Cancelled {
		dash = ` stroke-dasharray="5 3"`
	}
	fill := flow.StateColor(state)
	if nd.mapped {
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" rx="7" fill="%s" stroke="#475467"%s/>`, nd.x+4, y0+4, nd.w, gNodeH, fill, dash)
	}
	fmt.Fprintf(b, `<rect class="box" x="%.1f" y="%.1f" width="%.1f" height="%d" rx="7" fill="%s" stroke="#475467" stroke-width="1.2"%s/>`, nd.x, y0, nd.w, gNodeH, fill, dash)
	name := nd.name
	if nd.mapped {
		name += " (map)"
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-weight="600" fill="#101828">%s</text>`, nd.x+nd.w/2, nd.y-4, esc(name))
	fmt.Fprintf(b, `<text class="detail" x="%.1f" y="%.1f" text-anchor="middle" fill="#344054" font-size="11">%s</text>`, nd.x+nd.w/2, nd.y+13, esc(nodeDetail(nd)))
	b.WriteString("</a>")
}

// nodeDetail is a node's second line: its state and, when they say more,
// its attempts and duration, or its children's counts.
func nodeDetail(nd *gNode) string {
	r := nd.row
	if r == nil {
		return "Pending"
	}
	if nd.mapped {
		done, failed := 0, 0
		for _, c := range r.Children {
			if isFinal(c.State) {
				done++
				if st, _ := parseState(c.State); !st.Successful() {
					failed++
				}
			}
		}
		s := fmt.Sprintf("%s · %d/%d done", r.State, done, len(r.Children))
		if failed > 0 {
			s += fmt.Sprintf(", %d failed", failed)
		}
		return s
	}
	s := r.State
	if n := len(r.Attempts); n > 1 {
		s += fmt.Sprintf(" · %d attempts", n)
	}
	if !r.Start.IsZero() && !r.End.IsZero() {
		s += " · " + fmtDur(r.End.Sub(r.Start))
	}
	return s
}

func nodeTooltip(nd *gNode) string {
	t := nd.name
	if nd.task != "" && nd.task != nd.name {
		t += " (task " + nd.task + ")"
	}
	t += "\n" + nodeDetail(nd)
	if r := nd.row; r != nil && r.ErrMsg != "" {
		t += "\n" + r.ErrMsg
	}
	return t
}

// legendStates are the states of the graph's nodes, in stateOrder.
func legendStates(rows []*taskRow) []string {
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.State] = true
	}
	var out []string
	for _, s := range stateOrder {
		if seen[s] {
			out = append(out, s)
		}
	}
	return out
}

func textW(s string, mapped bool) float64 {
	n := len([]rune(s))
	if mapped {
		n += 6
	}
	return float64(n) * gChar
}

func clipText(s string, w float64) string {
	r := []rune(s)
	fit := int(w / gChar)
	if len(r) <= fit || fit < 2 {
		return s
	}
	return string(r[:fit-1]) + "…"
}

func appendUnique(s []int, v int) []int {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func esc(s string) string { return html.EscapeString(s) }
