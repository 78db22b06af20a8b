package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sort"
	"sync"

	"github.com/flowline-go/flowline/internal/stack"
	"github.com/flowline-go/flowline/observe"
)

// Codec encodes inputs and results for executors that run calls in another
// process or on another machine. A Codec must be safe for concurrent use and
// must be the same on both sides of the boundary.
type Codec interface {
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, which is a non-nil pointer.
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec: encoding/json.
type JSON struct{}

// Marshal calls json.Marshal.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal calls json.Unmarshal.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Raw is an input or a result still in its encoded form. A Call whose Input
// is Raw has it decoded with the handler's codec before the task runs;
// in-process executors and remote workers treat it alike, so a bad encoding
// is the same *InputError everywhere.
type Raw []byte

// Handler is a task in the untyped form that executors run: a name, a
// function of one input, the input and output types, and the codec used
// when the call crosses a process boundary. NewHandler builds one from a
// typed function; the task package builds its tasks on it. A Handler is
// immutable and safe for concurrent use.
type Handler struct {
	name    string
	in, out reflect.Type
	codec   Codec
	run     func(ctx context.Context, in any) (any, error)
}

// NewHandler returns the Handler for fn under name. A nil codec means JSON.
// It panics if name is empty or fn is nil: those are programming errors.
func NewHandler[In, Out any](name string, fn func(context.Context, In) (Out, error), codec Codec) *Handler {
	if name == "" {
		panic("executor: NewHandler with an empty task name")
	}
	if fn == nil {
		panic("executor: NewHandler with a nil function for task " + name)
	}
	if codec == nil {
		codec = JSON{}
	}
	return &Handler{
		name:  name,
		in:    reflect.TypeFor[In](),
		out:   reflect.TypeFor[Out](),
		codec: codec,
		run: func(ctx context.Context, in any) (any, error) {
			v, ok := in.(In)
			if !ok {
				if in != nil {
					return nil, &InputError{Task: name, Type: reflect.TypeFor[In]().String(),
						Err: fmt.Errorf("got a value of type %T", in)}
				}
				// A nil input is the zero value: nil pointers, empty
				// interfaces, and callers with nothing to pass.
			}
			return fn(ctx, v)
		},
	}
}

// Name returns the task's registered name.
func (h *Handler) Name() string { return h.name }

// InputType returns the type of the task's input.
func (h *Handler) InputType() reflect.Type { return h.in }

// OutputType returns the type of the task's result.
func (h *Handler) OutputType() reflect.Type { return h.out }

// Codec returns the codec used across process boundaries.
func (h *Handler) Codec() Codec { return h.codec }

// Run runs the task on input, on the calling goroutine, and returns what the
// task returned. It is the boundary where user code runs:
//   - an input of Raw is decoded first; a decoding failure is an
//     *InputError and the task does not run;
//   - an input of another type than the task's is an *InputError; a nil
//     input is the zero value of the input type;
//   - a panic in the task is recovered and returned as a *PanicError with
//     the panicking goroutine's stack;
//   - a task that calls runtime.Goexit (directly, or through a helper such
//     as testing.T.FailNow) cannot be stopped from doing so: the calling
//     goroutine ends, exactly as in plain Go, and Run does not return.
//     Executors that must answer such a call run it with RunOnGoexit (on
//     a goroutine of their own) or RunIsolated (a worker loop that must
//     survive).
func (h *Handler) Run(ctx context.Context, input any) (out any, err error) {
	return h.RunOnGoexit(ctx, input, nil)
}

// RunOnGoexit is Run for executors that run calls on goroutines they own.
// It returns as Run does when the task returns or panics. When the task
// calls runtime.Goexit, which nothing can stop, RunOnGoexit calls
// onGoexit with a *PanicError whose Value is ErrGoexit (so errors.Is(err,
// ErrGoexit) holds and ClassOf is ClassPanic), from a deferred function on
// the exiting goroutine, and then does not return: the goroutine ends once
// onGoexit returns. onGoexit must therefore do everything the executor
// still owes the call and the goroutine: answer the call, count it, release
// its resources, and start a replacement goroutine if the executor needs
// one (the exiting goroutine must not be waited for by it). onGoexit is
// never called when the task returns or panics; a nil onGoexit makes
// RunOnGoexit exactly Run.
func (h *Handler) RunOnGoexit(ctx context.Context, input any, onGoexit func(*PanicError)) (out any, err error) {
	if raw, ok := input.(Raw); ok {
		// A codec goes deep (encoding/json: some 30 frames), and the
		// goroutine here is often new (executor/pool starts one per busy
		// period, and a cluster worker's calls arrive one by one): grown
		// frame by frame inside the decode, its stack was copied at
		// nearly every call (runtime.newstack 3.6% of the CPU of
		// BenchmarkVsJetStream at 256 in flight, all of it here).
		stack.Grow()
		if input, err = h.DecodeInput(raw); err != nil {
			return nil, err
		}
	}
	returned := false
	defer func() {
		if returned {
			return
		}
		// recover is nil only for runtime.Goexit: since Go 1.21 panic(nil)
		// recovers a *runtime.PanicNilError.
		if v := recover(); v != nil {
			out, err = nil, &PanicError{Task: h.name, Value: v, Stack: debug.Stack()}
			return
		}
		if onGoexit != nil {
			onGoexit(&PanicError{Task: h.name, Value: ErrGoexit, Stack: debug.Stack()})
		}
	}()
	out, err = h.run(ctx, input)
	returned = true
	return out, err
}

// RunIsolated runs the task like Run, but on a goroutine of its own that it
// waits for, so that runtime.Goexit in the task ends that goroutine and not
// the caller's: the call then returns a *PanicError whose Value is
// ErrGoexit. It costs one goroutine start per call. It is for worker loops
// that must survive any task, such as the subprocess and cluster workers;
// in-process executors that already run calls on goroutines of their own
// use RunOnGoexit instead, which costs nothing. The task's goroutine has
// ended when RunIsolated returns.
func (h *Handler) RunIsolated(ctx context.Context, input any) (any, error) {
	type result struct {
		out any
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := h.RunOnGoexit(ctx, input, func(pe *PanicError) { done <- result{err: pe} })
		done <- result{out, err}
	}()
	r := <-done
	return r.out, r.err
}

// DecodeInput decodes data into a value of the input type. An error is an
// *InputError naming the task and the type.
func (h *Handler) DecodeInput(data []byte) (any, error) {
	v, err := decodeInto(h.codec, h.in, data)
	if err != nil {
		return nil, &InputError{Task: h.name, Type: h.in.String(), Err: err}
	}
	return v, nil
}

// EncodeInput encodes an input for a call in another process. A Raw input
// is passed through unchanged; an input of the wrong type, or one the codec
// refuses, is an *InputError.
func (h *Handler) EncodeInput(input any) ([]byte, error) {
	if raw, ok := input.(Raw); ok {
		return raw, nil
	}
	if input != nil && !reflect.TypeOf(input).AssignableTo(h.in) {
		return nil, &InputError{Task: h.name, Type: h.in.String(), Err: fmt.Errorf("got a value of type %T", input)}
	}
	data, err := h.codec.Marshal(input)
	if err != nil {
		return nil, &InputError{Task: h.name, Type: h.in.String(), Err: err}
	}
	return data, nil
}

// EncodeOutput encodes a result for the trip back to the caller. An error
// is an *OutputError naming the task and the type.
func (h *Handler) EncodeOutput(out any) ([]byte, error) {
	data, err := h.codec.Marshal(out)
	if err != nil {
		return nil, &OutputError{Task: h.name, Type: h.out.String(), Err: err}
	}
	return data, nil
}

// DecodeOutput decodes a result produced by EncodeOutput in another
// process. An error is an *OutputError.
func (h *Handler) DecodeOutput(data []byte) (any, error) {
	v, err := decodeInto(h.codec, h.out, data)
	if err != nil {
		return nil, &OutputError{Task: h.name, Type: h.out.String(), Err: err}
	}
	return v, nil
}

func decodeInto(c Codec, t reflect.Type, data []byte) (any, error) {
	p := reflect.New(t)
	if err := c.Unmarshal(data, p.Interface()); err != nil {
		return nil, err
	}
	return p.Elem().Interface(), nil
}

// Registry maps task names to Handlers, for executors whose workers find a
// task by name (a subprocess worker, a cluster worker). The zero Registry is
// empty and ready to use; a Registry is safe for concurrent use.
//
// Workers must build the same registry as the program that submits: in
// practice, one function of the program registers every task and both the
// program and its worker mode call it.
type Registry struct {
	mu       sync.RWMutex
	tasks    map[string]*Handler
	observer observe.Observer
}

// SetObserver gives the workers that serve this registry (a subprocess
// worker, a cluster worker) an observer: its WorkerStart and WorkerEnd
// are called around every call they run for another process, so that it
// can make a span that is a child of the caller's. Nil removes it. Set it
// before the worker starts serving.
func (r *Registry) SetObserver(o observe.Observer) {
	r.mu.Lock()
	r.observer = o
	r.mu.Unlock()
}

// Observer returns the observer set with SetObserver, or nil. A nil
// Registry has none.
func (r *Registry) Observer() observe.Observer {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.observer
}

// NewRegistry returns a registry holding handlers. It fails like Register.
//
// Programs whose tasks are task.New tasks call task.NewRegistry instead,
// which takes the tasks themselves; this constructor is for code below
// the task layer: executors' tests and programs that submit
// executor.Handlers directly with executor.Run.
func NewRegistry(handlers ...*Handler) (*Registry, error) {
	r := &Registry{}
	for _, h := range handlers {
		if err := r.Register(h); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds h under its name. A name registered twice is an error
// matching ErrDuplicateTask, even for the same handler, so that two tasks can
// never silently share a name; a nil handler is an error.
func (r *Registry) Register(h *Handler) error {
	if h == nil {
		return errors.New("executor: Register with a nil handler")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.tasks[h.name]; dup {
		return fmt.Errorf("%w: %q", ErrDuplicateTask, h.name)
	}
	if r.tasks == nil {
		r.tasks = make(map[string]*Handler)
	}
	r.tasks[h.name] = h
	return nil
}

// Lookup returns the handler registered under name, or an
// *UnknownTaskError. A nil Registry is empty.
func (r *Registry) Lookup(name string) (*Handler, error) {
	if r != nil {
		r.mu.RLock()
		h := r.tasks[name]
		r.mu.RUnlock()
		if h != nil {
			return h, nil
		}
	}
	return nil, &UnknownTaskError{Task: name}
}

// Names returns the registered names in sorted order.
func (r *Registry) Names() []string {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.tasks))
	for n := range r.tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
