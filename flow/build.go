package flow

import (
	"container/heap"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/task"
)

// Flow is a built, checked flow: immutable, safe for concurrent use, and
// runnable any number of times, concurrently (see Run).
type Flow struct {
	owner      *owner // the Builder whose handles belong to this flow
	name       string
	opts       Options
	nodes      []node // by id: creation order
	order      []int32
	params     []param
	refs       []int32
	byNameOnce sync.Once
	byName     map[string]int32 // node names, made on first use

	scratch sync.Pool // *scratch, for the next run
	// last is the last run's scratch, kept from the garbage collector,
	// which empties scratch at every cycle: a large run has several, and
	// its next run would make its working memory again.
	last     atomic.Pointer[scratch]
	hashOnce sync.Once
	hash     string  // see Hash
	nameAt   []int32 // nameAt[i]: the length of the names of nodes before i
	sorted   bool    // whether creation order is topological
	limited  []int32 // the nodes whose tasks name limits, for checkLimits

	// Upstream and downstream edges, in compressed form: node i's
	// upstream ids are up[upAt[i]:upAt[i+1]], deduplicated; upData says
	// whether each is a data edge (else ordering-only).
	upAt, up     []int32
	upData       []bool
	downAt, down []int32
}

type node struct {
	name      string
	spec      task.Spec
	kind      nodeKind
	trigger   task.Trigger
	runOnSkip bool
	params    []int32     // parameters read, for graphs
	limits    []limit.Use // the task's Options.Limits

	input   func(r *run) any // nil: no input (see run.input)
	prepare func(r *run) (int, any)
	child   func(state any, i int) any
	gather  func(r *run, first, n int32) any
}

type param struct {
	name     string
	required bool
	def      any
	typ      reflect.Type
}

// Name returns the flow's name.
func (f *Flow) Name() string { return f.name }

// lookup returns the id of the node named name.
func (f *Flow) lookup(name string) (int32, bool) {
	f.byNameOnce.Do(func() {
		f.byName = make(map[string]int32, len(f.nodes))
		for i := range f.nodes {
			f.byName[f.nodes[i].name] = int32(i)
		}
	})
	id, ok := f.byName[name]
	return id, ok
}

// Len returns the number of nodes (a mapped node counts once).
func (f *Flow) Len() int { return len(f.nodes) }

// Build checks the flow and returns it built: every node has a task, names
// are unique (nodes and parameters together), every upstream node and
// parameter belongs to this Builder, Outcomes reads mapped nodes, and
// there is no cycle. It returns every problem it finds, joined; each is a
// *BuildError naming the nodes involved and matching its sentinel
// (ErrNilTask, ErrDuplicateName, ErrMissingUpstream, ErrNotMapped,
// ErrCycle). The Builder can go on growing afterwards without changing the
// flow.
func (b *Builder) Build() (*Flow, error) {
	var errs []error
	fail := func(sentinel error, tasks []string, format string, args ...any) {
		errs = append(errs, &BuildError{Flow: b.name, Err: sentinel, Tasks: tasks, What: fmt.Sprintf(format, args...)})
	}

	n := len(b.nodes)
	f := &Flow{
		owner:  b.owner,
		name:   b.name,
		opts:   b.opts,
		nodes:  make([]node, n),
		nameAt: make([]int32, n+1),
		params: make([]param, len(b.params)),
		upAt:   make([]int32, n+1),
		downAt: make([]int32, n+1),
	}

	// Names: nodes and parameters share one namespace.
	uses := make(map[string]int, n+len(b.params))
	for _, p := range b.params {
		uses[p.name]++
		f.params[p.id] = param{name: p.name, required: p.required, def: p.def, typ: p.typ}
	}
	for _, d := range b.nodes {
		if d.spec == nil {
			fail(ErrNilTask, []string{d.name}, "node %s has a nil task", d.label())
		}
		if d.name != "" {
			uses[d.name]++
		}
		f.nameAt[d.id+1] = f.nameAt[d.id] + int32(len(d.name))
	}
	reported := make(map[string]bool)
	dup := func(name string) {
		if k := uses[name]; k > 1 && !reported[name] {
			reported[name] = true
			fail(ErrDuplicateName, []string{name}, "%q names %d nodes and parameters; rename with Named", name, k)
		}
	}
	for _, p := range b.params {
		dup(p.name)
	}
	for _, d := range b.nodes {
		dup(d.name)
	}

	// Edges. stamp[u] == i+1 marks u as already an upstream of node i.
	stamp := make([]int32, n)
	inFlow := func(d *nodeDef) bool { return d != nil && d.owner == b.owner && int(d.id) < n && b.nodes[d.id] == d }
	for _, d := range b.nodes {
		i := d.id
		nd := &f.nodes[i]
		*nd = node{name: d.name, spec: d.spec, kind: d.kind,
			input: d.input, prepare: d.prepare, child: d.child, gather: d.gather}
		if d.spec != nil {
			o := d.spec.Options()
			nd.trigger, nd.runOnSkip, nd.limits = o.Trigger, o.RunOnUpstreamSkip, o.Limits
			if len(o.Limits) > 0 {
				f.limited = append(f.limited, i)
			}
		}
		addUp := func(u int32, data bool) {
			if stamp[u] == i+1 {
				if data { // an edge both data and ordering is a data edge
					for k := f.upAt[i]; k < int32(len(f.up)); k++ {
						if f.up[k] == u {
							f.upData[k] = true
						}
					}
				}
				return
			}
			stamp[u] = i + 1
			f.up = append(f.up, u)
			f.upData = append(f.upData, data)
		}
		f.upAt[i] = int32(len(f.up))
		for _, s := range d.data {
			switch {
			case s.nilNode:
				fail(ErrMissingUpstream, []string{d.name}, "node %s reads a nil node or input", d.label())
			case s.param != nil:
				if s.param.owner != b.owner {
					fail(ErrMissingUpstream, []string{d.name, s.param.name},
						"node %s reads parameter %q of another flow (%q)", d.label(), s.param.name, s.param.owner.name)
					continue
				}
				if !slices.Contains(nd.params, s.param.id) {
					nd.params = append(nd.params, s.param.id)
				}
			case !inFlow(s.node):
				fail(ErrMissingUpstream, []string{d.name, s.node.name},
					"node %s reads node %q of another flow (%q)", d.label(), s.node.name, s.node.owner.name)
			default:
				if s.outcomes && s.node.kind != mappedNode {
					fail(ErrNotMapped, []string{d.name, s.node.name},
						"node %s reads the outcomes of %q, which is not a mapped node", d.label(), s.node.name)
				}
				addUp(s.node.id, true)
			}
		}
		for _, a := range d.after {
			var ad *nodeDef
			if a != nil {
				ad = a.def()
			}
			switch {
			case ad == nil:
				fail(ErrMissingUpstream, []string{d.name}, "node %s waits for a nil node", d.label())
			case !inFlow(ad):
				fail(ErrMissingUpstream, []string{d.name, ad.name},
					"node %s waits for node %q of another flow (%q)", d.label(), ad.name, ad.owner.name)
			default:
				addUp(ad.id, false)
			}
		}
	}
	f.upAt[n] = int32(len(f.up))

	// Downstream edges.
	for _, u := range f.up {
		f.downAt[u+1]++
	}
	for i := range n {
		f.downAt[i+1] += f.downAt[i]
	}
	f.down = make([]int32, len(f.up))
	fill := slices.Clone(f.downAt[:n])
	for i := range int32(n) {
		for _, u := range f.up[f.upAt[i]:f.upAt[i+1]] {
			f.down[fill[u]] = i
			fill[u]++
		}
	}

	if cycle := f.topoSort(); cycle != nil {
		names := make([]string, len(cycle))
		quoted := ""
		for k, id := range cycle {
			names[k] = f.nodes[id].name
			if k > 0 {
				quoted += " -> "
			}
			quoted += fmt.Sprintf("%q", names[k])
		}
		fail(ErrCycle, names, "%s", quoted)
	}

	// Reference nodes: the terminal nodes unless set.
	seen := make(map[int32]bool)
	for _, a := range b.refs {
		var ad *nodeDef
		if a != nil {
			ad = a.def()
		}
		switch {
		case ad == nil:
			fail(ErrMissingUpstream, nil, "a reference node is nil")
		case !inFlow(ad):
			fail(ErrMissingUpstream, []string{ad.name}, "reference node %q belongs to another flow (%q)", ad.name, ad.owner.name)
		case !seen[ad.id]:
			seen[ad.id] = true
			f.refs = append(f.refs, ad.id)
		}
	}
	if len(f.refs) == 0 {
		for i := range int32(n) {
			if f.downAt[i] == f.downAt[i+1] {
				f.refs = append(f.refs, i)
			}
		}
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// topoSort sets f.order to a topological order, creation order where the
// edges allow, and returns nil; or it returns one cycle, as a path whose
// first node is repeated at its end.
func (f *Flow) topoSort() []int32 {
	n := int32(len(f.nodes))
	f.order = make([]int32, 0, n)
	sorted := true // is creation order topological? (it is without After edges to later nodes)
	for i := range n {
		for _, u := range f.up[f.upAt[i]:f.upAt[i+1]] {
			if u >= i {
				sorted = false
			}
		}
	}
	f.sorted = sorted
	if sorted {
		for i := range n {
			f.order = append(f.order, i)
		}
		return nil
	}
	indeg := make([]int32, n)
	h := &idHeap{}
	for i := range n {
		indeg[i] = f.upAt[i+1] - f.upAt[i]
		if indeg[i] == 0 {
			heap.Push(h, i)
		}
	}
	for h.Len() > 0 {
		i := heap.Pop(h).(int32)
		f.order = append(f.order, i)
		for _, d := range f.down[f.downAt[i]:f.downAt[i+1]] {
			if indeg[d]--; indeg[d] == 0 {
				heap.Push(h, d)
			}
		}
	}
	if int32(len(f.order)) == n {
		return nil
	}
	// Every node left has an upstream node left: walk upstream until a
	// node repeats.
	var start int32
	for i := range n {
		if indeg[i] > 0 {
			start = i
			break
		}
	}
	pos := make(map[int32]int)
	var path []int32
	for i := start; ; {
		if k, ok := pos[i]; ok {
			path = append(path[k:], i)
			break
		}
		pos[i] = len(path)
		path = append(path, i)
		for _, u := range f.up[f.upAt[i]:f.upAt[i+1]] {
			if indeg[u] > 0 {
				i = u
				break
			}
		}
	}
	slices.Reverse(path) // upstream first
	f.order = nil
	return path
}

type idHeap []int32

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(int32)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
