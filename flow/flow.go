// Package flow builds typed DAGs of tasks and runs them on any executor.
//
// A flow is built once, checked, and run many times, concurrently if you
// like. Nodes are tasks wired by typed data edges: a task of input In is
// fed by an Input[In] (another node's result, a run-time parameter, a
// constant, or a small combination of those), so an edge between
// mismatched types does not compile. Ordering-only edges (After), mapping
// a task over a slice (Map), triggers and skips (task.Options) complete
// the picture.
//
//	b := flow.New("etl", flow.Options{Timeout: time.Minute})
//	day := flow.Param[string](b, "day")
//	rows := flow.Add(b, extract, day)          // extract: Task[string, []Row]
//	clean := flow.Map(b, transform, rows)      // transform: Task[Row, Row], once per row
//	total := flow.Add(b, load, clean)          // load: Task[[]Row, int]
//	f, err := b.Build()                        // cycles, duplicate names, foreign nodes
//	res, err := f.Run(ctx, ex, flow.RunOptions{Args: []flow.Arg{day.Set("2025-01-31")}})
//	if res == nil { ... }                      // a *ParamError: no task started
//	fmt.Print(res.Report())                    // every task run; err joins the failures
//	n, ok := flow.Value(res, total)
//
// Run is event-driven: one scheduler loop per run, on the caller's
// goroutine, submits each task to the executor the moment its upstream
// tasks are final, with no goroutine per task and no level-by-level
// barrier. Each task run goes through a task.Runner (attempts, retries with
// backoff, states). A flow timeout or the caller's context stops the run:
// running calls are cancelled (killed on hard executors), tasks that have
// not started end Cancelled, and Run returns with every task final.
//
// Pick this package when work has dependencies; use task.Run (or
// executor.Run) for a single call.
package flow

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/flowline-go/flowline/internal/wire"
	"github.com/flowline-go/flowline/task"
)

// Options configure a flow. The zero value is a flow without a time limit.
type Options struct {
	// Timeout limits each run of the flow, from the moment Run starts. At
	// the limit the run stops as if its context had been cancelled, and
	// ends TimedOut with a *TimeoutError. Zero or less means no limit; the
	// caller's context can still end a run.
	Timeout time.Duration
}

// Builder collects the nodes and parameters of a flow. Its zero value is
// not usable: call New. A Builder is not safe for concurrent use. Build
// takes a snapshot: a Builder can go on growing after Build, and Build
// again, without changing flows already built.
type Builder struct {
	owner  *owner
	name   string
	opts   Options
	nodes  []*nodeDef
	params []*paramDef
	refs   []AnyNode
}

// New returns an empty Builder for the flow name. It panics if name is
// empty: that is a programming error.
func New(name string, opts Options) *Builder {
	if name == "" {
		panic("flow: New with an empty name")
	}
	return &Builder{owner: &owner{name: name}, name: name, opts: opts}
}

// owner identifies a Builder to its nodes, parameters and flows, without
// keeping the Builder alive.
type owner struct{ name string }

// nodeDef is a node as the builder holds it.
type nodeDef struct {
	owner *owner
	id    int32
	name  string
	spec  task.Spec // nil when Add was given a nil task
	kind  nodeKind
	data  []source  // what the input reads
	after []AnyNode // ordering-only upstream nodes

	// input returns a plain node's input, nil for the zero value; nil
	// for a node added without an input.
	input func(r *run) any
	// prepare evaluates a mapped node's inputs: how many children, and a
	// state from which child returns each child's input.
	prepare func(r *run) (int, any)
	child   func(state any, i int) any
	// gather assembles a mapped node's result from its children.
	gather func(r *run, first, n int32) any
}

type nodeKind uint8

const (
	plainNode nodeKind = iota
	mappedNode
)

// source is one node or parameter that an input reads, or (nilNode) a nil
// handle or input where one was needed, which Build reports.
type source struct {
	node     *nodeDef
	param    *paramDef
	nilNode  bool // a nil *Node was used as an input
	outcomes bool // read through Outcomes: the node must be mapped
}

// AnyNode is a node of any result type: what After and Builder.Reference
// accept. Every *Node[T] is an AnyNode; no other type is.
type AnyNode interface {
	// Name returns the node's name.
	Name() string
	def() *nodeDef
}

// Node is a task in a flow, whose result is a T: an Input[T] for the
// tasks downstream of it. Add and Map return nodes; they are handles into
// their Builder, valid in every flow built from it.
type Node[T any] struct {
	d *nodeDef
}

// Name returns the node's name: its task's name unless Named changed it.
// It returns "" for a nil node.
func (n *Node[T]) Name() string {
	if n == nil {
		return ""
	}
	return n.d.name
}

// Named renames the node and returns it. Names must be unique within a
// flow (parameters included): add the same task twice under two names.
// It panics on an empty name, a programming error.
func (n *Node[T]) Named(name string) *Node[T] {
	if name == "" {
		panic("flow: Named with an empty name")
	}
	n.d.name = name
	return n
}

// After makes the node wait for other nodes without taking their results:
// an ordering-only edge. The upstream nodes count for the node's trigger
// and for skip propagation like data upstreams do. It returns n, and may
// be called more than once. A nil node or a node of another flow is
// reported by Build, as is a cycle made of After edges.
func (n *Node[T]) After(upstream ...AnyNode) *Node[T] {
	n.d.after = append(n.d.after, upstream...)
	return n
}

func (n *Node[T]) def() *nodeDef {
	if n == nil {
		return nil
	}
	return n.d
}

// Input is a value of type T that a task reads when it starts: a *Node[T],
// a *Parameter[T], or one of Const, Convert, Combine2, Combine3, Collect,
// Outcomes. Only this package implements it, so every edge is typed.
type Input[T any] interface {
	sources() []source
	// get returns the value, typed.
	get(r *run) T
	// boxed returns the value as an any holding a T, or nil for the zero
	// T; it saves a re-boxing when the value was stored boxed already.
	boxed(r *run) any
}

func (n *Node[T]) sources() []source {
	if n == nil {
		return []source{{nilNode: true}}
	}
	return []source{{node: n.d}}
}

func (n *Node[T]) get(r *run) T {
	v, _ := r.recs[n.d.id].Value.(T)
	return v
}

func (n *Node[T]) boxed(r *run) any {
	if v := r.recs[n.d.id].Value; v != nil {
		if _, ok := v.(T); ok {
			return v
		}
	}
	return nil
}

// Add adds a node running t on in and returns it. A nil in means the zero
// value of In, for tasks that need no input. The node is named after the
// task; rename it with Named to add one task more than once. A nil t, or
// an in that reads nodes or parameters of another Builder, is reported by
// Build. Add panics on a nil Builder.
func Add[In, Out any](b *Builder, t *task.Task[In, Out], in Input[In]) *Node[Out] {
	d := b.add(t, t == nil, plainNode)
	if in != nil {
		d.data = in.sources()
		d.input = in.boxed
	} // else nil: no input to build (see run.input)
	return &Node[Out]{d: d}
}

// Map adds a node that runs t once per element of over, each element as
// the input of one child run with its own limit, retries and state,
// labelled "name[i]". The node's result is the children's results in the
// order of over; an empty slice gives no children and an empty result.
//
// A mapped node is final once all its children are: Success when all
// succeeded, Failed when any Failed, TimedOut or TriggerFailed, Cancelled
// when any was cancelled, Skipped when all were skipped. Downstream tasks
// see that state through their trigger like any other: with the default
// AllSuccessful a failed child ends them TriggerFailed; a trigger that lets
// them run anyway gives them the zero value in place of each child that
// did not succeed (read Outcomes to tell which). Mapping over a mapped
// node's result is mapping over a slice like any other: it starts once the
// first mapped node is final.
func Map[In, Out any](b *Builder, t *task.Task[In, Out], over Input[[]In]) *Node[[]Out] {
	d := b.add(t, t == nil, mappedNode)
	if over == nil {
		d.data = []source{{nilNode: true}}
		return &Node[[]Out]{d: d}
	}
	d.data = over.sources()
	d.prepare = func(r *run) (int, any) {
		s := over.get(r)
		return len(s), s
	}
	d.child = func(state any, i int) any { return state.([]In)[i] }
	d.gather = gather[Out]
	return &Node[[]Out]{d: d}
}

// MapWith is Map for tasks whose input is built from each element and a
// value shared by every child (Prefect's "unmapped"): child i runs on
// fn(over[i], shared). shared is read once, when the node starts; fn runs
// on the scheduler's goroutine and must be quick. A panic in fn fails the
// child without retries.
func MapWith[E, C, In, Out any](b *Builder, t *task.Task[In, Out], over Input[[]E], shared Input[C], fn func(elem E, shared C) In) *Node[[]Out] {
	if fn == nil {
		panic("flow: MapWith with a nil function")
	}
	d := b.add(t, t == nil, mappedNode)
	if over == nil || shared == nil {
		d.data = []source{{nilNode: true}}
		return &Node[[]Out]{d: d}
	}
	d.data = append(over.sources(), shared.sources()...)
	type state struct {
		elems  []E
		shared C
	}
	d.prepare = func(r *run) (int, any) {
		s := &state{elems: over.get(r), shared: shared.get(r)}
		return len(s.elems), s
	}
	d.child = func(st any, i int) any {
		s := st.(*state)
		return fn(s.elems[i], s.shared)
	}
	d.gather = gather[Out]
	return &Node[[]Out]{d: d}
}

func gather[Out any](r *run, first, n int32) any {
	out := make([]Out, n)
	for i := range out {
		if v, ok := r.recs[first+int32(i)].Value.(Out); ok {
			out[i] = v
		}
	}
	return out
}

func (b *Builder) add(spec task.Spec, isNil bool, kind nodeKind) *nodeDef {
	if b == nil {
		panic("flow: Add or Map with a nil Builder")
	}
	d := &nodeDef{owner: b.owner, id: int32(len(b.nodes)), kind: kind}
	if !isNil {
		d.spec = spec
		d.name = spec.Name()
	}
	b.nodes = append(b.nodes, d)
	return d
}

// Reference names the nodes whose states decide the flow run's state. By
// default (no call, or no nodes) they are the terminal nodes: those no
// other node depends on. Calls add up. Nodes of another Builder are
// reported by Build.
func (b *Builder) Reference(nodes ...AnyNode) {
	b.refs = append(b.refs, nodes...)
}

// Name returns the flow's name.
func (b *Builder) Name() string { return b.name }

// paramDef is a parameter as the builder holds it.
type paramDef struct {
	owner    *owner
	id       int32
	name     string
	required bool
	def      any          // the default, boxed
	typ      reflect.Type // T, to decode a recorded value
}

// Parameter is a value given to each run of a flow (Prefect's Parameter):
// an Input[T] for the tasks that read it. Param and ParamOr make them;
// Set gives a run its value.
type Parameter[T any] struct {
	d *paramDef
}

// Param adds a required parameter: a run without a value for it fails
// before any task starts, with an error matching ErrMissingParam. It
// panics on an empty name or a nil Builder.
func Param[T any](b *Builder, name string) *Parameter[T] {
	p := &Parameter[T]{d: b.param(name, true, nil)}
	p.d.typ = reflect.TypeFor[T]()
	return p
}

// ParamOr adds a parameter that takes the value def in runs that do not
// set it. Those runs share def: tasks must not modify it (a slice, a map). It panics on an empty name or a nil Builder.
func ParamOr[T any](b *Builder, name string, def T) *Parameter[T] {
	p := &Parameter[T]{d: b.param(name, false, def)}
	p.d.typ = reflect.TypeFor[T]()
	return p
}

func (b *Builder) param(name string, required bool, def any) *paramDef {
	if b == nil {
		panic("flow: Param with a nil Builder")
	}
	if name == "" {
		panic("flow: Param with an empty name")
	}
	d := &paramDef{owner: b.owner, id: int32(len(b.params)), name: name, required: required, def: def}
	b.params = append(b.params, d)
	return d
}

// Name returns the parameter's name.
func (p *Parameter[T]) Name() string { return p.d.name }

// Set returns the argument giving the parameter the value v in one run.
func (p *Parameter[T]) Set(v T) Arg { return Arg{p: p.d, v: v} }

func (p *Parameter[T]) sources() []source {
	if p == nil {
		return []source{{nilNode: true}}
	}
	return []source{{param: p.d}}
}

func (p *Parameter[T]) get(r *run) T {
	v, _ := r.params[p.d.id].(T)
	return v
}

func (p *Parameter[T]) boxed(r *run) any { return r.params[p.d.id] }

// Arg is a parameter's value for one run: see Parameter.Set. The zero Arg
// is refused by Run.
type Arg struct {
	p *paramDef
	v any
}

// Const returns an Input that is always v. Every run shares v: tasks must
// not modify it (a slice, a map).
func Const[T any](v T) Input[T] { return constant[T]{v: v, box: v} }

type constant[T any] struct {
	v   T
	box any
}

func (c constant[T]) sources() []source { return nil }
func (c constant[T]) get(*run) T        { return c.v }
func (c constant[T]) boxed(*run) any    { return c.box }

// derived is an input computed from others when its task starts.
type derived[T any] struct {
	srcs []source
	fn   func(r *run) T
}

func (d derived[T]) sources() []source { return d.srcs }
func (d derived[T]) get(r *run) T      { return d.fn(r) }
func (d derived[T]) boxed(r *run) any  { return d.fn(r) }

func sourcesOf(inputs ...interface{ sources() []source }) []source {
	var s []source
	for _, in := range inputs {
		if in == nil {
			s = append(s, source{nilNode: true})
			continue
		}
		s = append(s, in.sources()...)
	}
	return s
}

// Convert returns an Input that is fn of in, computed when the reading
// task starts, on the scheduler's goroutine: fn must be quick and must not
// block. A panic in fn fails the reading task without retries. Use it to
// adapt one result to another task's input (pick a field, wrap a value).
func Convert[A, T any](in Input[A], fn func(A) T) Input[T] {
	if fn == nil {
		panic("flow: Convert with a nil function")
	}
	return derived[T]{srcs: sourcesOf(in), fn: func(r *run) T { return fn(in.get(r)) }}
}

// Combine2 returns an Input built from two others by fn: how a task reads
// several upstream results, each with its own type, into its one input
// (usually a struct of the task's own). fn runs when the task starts, on
// the scheduler's goroutine, and must be quick; a panic in it fails the
// task without retries.
func Combine2[A, B, T any](a Input[A], b Input[B], fn func(A, B) T) Input[T] {
	if fn == nil {
		panic("flow: Combine2 with a nil function")
	}
	return derived[T]{srcs: sourcesOf(a, b), fn: func(r *run) T { return fn(a.get(r), b.get(r)) }}
}

// Combine3 is Combine2 for three inputs. For more, combine combinations,
// or Collect inputs of one type.
func Combine3[A, B, C, T any](a Input[A], b Input[B], c Input[C], fn func(A, B, C) T) Input[T] {
	if fn == nil {
		panic("flow: Combine3 with a nil function")
	}
	return derived[T]{srcs: sourcesOf(a, b, c), fn: func(r *run) T { return fn(a.get(r), b.get(r), c.get(r)) }}
}

// Collect returns an Input that is the values of ins, in order: how a task
// gathers the results of many upstream tasks of one type. No inputs give
// an empty slice.
func Collect[T any](ins ...Input[T]) Input[[]T] {
	ins = append([]Input[T](nil), ins...)
	var srcs []source
	for _, in := range ins {
		if in == nil {
			srcs = append(srcs, source{nilNode: true})
			continue
		}
		srcs = append(srcs, in.sources()...)
	}
	return derived[[]T]{srcs: srcs, fn: func(r *run) []T {
		out := make([]T, len(ins))
		for i, in := range ins {
			out[i] = in.get(r)
		}
		return out
	}}
}

// Outcome is one mapped child's result as Outcomes gives it.
type Outcome[T any] struct {
	Value T          // the child's result; the zero T unless State is Success
	State task.State // the child's final state
	Err   error      // why the child did not succeed; nil for Success
}

// outcomeJSON is an Outcome's encoded form: the error travels as an
// internal/wire envelope, so that a task on an out-of-process executor
// receives it with its message and class (and its type, for the executor
// package's errors).
type outcomeJSON[T any] struct {
	Value T           `json:"value"`
	State task.State  `json:"state"`
	Err   *wire.Error `json:"err,omitempty"`
}

// MarshalJSON encodes the outcome, its error as message and class.
func (o Outcome[T]) MarshalJSON() ([]byte, error) {
	return json.Marshal(outcomeJSON[T]{Value: o.Value, State: o.State, Err: wire.EncodeError(o.Err)})
}

// UnmarshalJSON decodes an outcome that MarshalJSON encoded. The error
// comes back with its message and class (an *executor.RemoteError), or as
// the executor package's own type (*executor.PanicError,
// *executor.CrashError, *executor.TimeoutError, ...).
func (o *Outcome[T]) UnmarshalJSON(data []byte) error {
	var j outcomeJSON[T]
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	o.Value, o.State, o.Err = j.Value, j.State, j.Err.Decode("")
	return nil
}

// Outcomes returns an Input that is the outcome of each child of the
// mapped node n, in order: for a task downstream of a mapping whose
// trigger lets it run after failed children (task.AllFinished, for
// instance) and that must tell them apart. Build reports a node that is
// not made by Map or MapWith (ErrNotMapped).
func Outcomes[T any](n *Node[[]T]) Input[[]Outcome[T]] {
	var srcs []source
	if n == nil {
		srcs = []source{{nilNode: true}}
	} else {
		srcs = []source{{node: n.d, outcomes: true}}
	}
	return derived[[]Outcome[T]]{srcs: srcs, fn: func(r *run) []Outcome[T] {
		var first, count int32
		if r.recs[n.d.id].Children > 0 {
			m := r.children(n.d.id)
			first, count = m.first, m.n
		}
		out := make([]Outcome[T], count)
		for i := range out {
			c := &r.recs[first+int32(i)]
			v, _ := c.Value.(T)
			out[i] = Outcome[T]{Value: v, State: c.State, Err: c.Err}
		}
		return out
	}}
}

func (d *nodeDef) label() string {
	if d.name != "" {
		return fmt.Sprintf("%q", d.name)
	}
	return fmt.Sprintf("#%d (nil task)", d.id)
}
