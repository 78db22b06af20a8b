// Package task defines tasks and runs them. A task is a named Go function
// of one input with options (a time limit, retries with backoff, a trigger,
// tags); a task run is that function's attempts on an executor, with
// retries, ending in one final State.
//
// Use it directly to run one task with retries and a limit on any executor
// (Task.Run); the flow package builds DAGs of tasks and runs them through
// the same Runner. Tasks that must run in another process (the subprocess
// and cluster executors) are found there by name: register them with
// NewRegistry in a function that both the program and its worker mode call.
//
// Task code can end its run early with the signals Skip and Fail, and find
// its logger and identity with Logger and Info.
package task

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/limit"
)

// Options configure a task. The zero value is a task with no limit, no
// retries and the AllSuccessful trigger.
type Options struct {
	// Timeout limits each attempt, from the moment it starts running.
	// Zero or less means no limit. How it is enforced (soft or hard) is the
	// executor's: see executor.TimeoutHandler.
	Timeout time.Duration

	// Grace is how long a hard executor lets an attempt's processes run
	// between SIGTERM and SIGKILL, for cooperative cleanup. Zero means the
	// executor's own setting (none by default for executor/subprocess),
	// negative means none, positive is that grace: see executor.Call.Grace.
	Grace time.Duration

	// MaxRetries is how many times a failed attempt is tried again: the run
	// makes at most MaxRetries+1 attempts. Zero means no retries; a
	// negative value is treated as zero.
	MaxRetries int

	// RetryDelay is the delay before the first retry; each further retry
	// doubles it (exponential backoff), up to RetryMaxDelay. Zero means
	// retry at once.
	RetryDelay time.Duration

	// RetryMaxDelay caps each delay. Zero means 10 minutes. The cap never
	// shortens a delay below RetryDelay.
	RetryMaxDelay time.Duration

	// RetryJitter is the fraction of each delay drawn at random, so that
	// many failed tasks do not retry in step: a delay d becomes uniform in
	// [d·(1−RetryJitter), d]. Zero means 0.5; a negative value means no
	// jitter; values above 1 are treated as 1.
	RetryJitter float64

	// RetryIf decides whether an attempt's error is retried. Nil retries
	// every error that can be retried: the task's own errors, timeouts,
	// panics and worker crashes. Whatever RetryIf says, these are never
	// retried: task.Fail and task.Skip signals, cancellations, bad inputs
	// and outputs, unknown tasks, and a closed executor.
	RetryIf func(err error) bool

	// Trigger decides from the upstream tasks' states, in a flow, whether
	// the task runs. The zero value is AllSuccessful.
	Trigger Trigger

	// RunOnUpstreamSkip makes the task run (subject to its trigger) when an
	// upstream task was skipped. By default a skipped upstream skips the
	// task too.
	RunOnUpstreamSkip bool

	// Tags label the task for reports and tools; they do not change how it
	// runs.
	Tags []string

	// Codec encodes the task's input and result when it runs in another
	// process, and when a flow run records its result in a store. Nil
	// means JSON. It must be the same in the worker.
	Codec executor.Codec

	// CacheFor turns result caching on, in flow runs with a store
	// (flow.RunOptions.Store): a successful result is stored under the
	// task's cache key for CacheFor, and a later task run with the same
	// key, in any process sharing the store, ends Cached with that value
	// without calling the executor. Concurrent task runs with one key run
	// the task once: the others wait for its result. Zero or less means
	// no caching. Without a store it does nothing.
	CacheFor time.Duration

	// CacheVersion is part of the default cache key: change it when the
	// task's code changes what it returns, so old entries stop matching.
	CacheVersion string

	// CacheKey returns the cache key of an input, given in its encoded
	// form (the Codec's). Nil means the default key: the task's name, "/",
	// CacheVersion, "/", and the SHA-256 of the encoded input in hex. A
	// key of "" turns caching off for that input.
	CacheKey func(encodedInput []byte) string

	// Limits name the limits each attempt of the task takes before it is
	// submitted (concurrency slots and rate tokens, by key; see package
	// limit), in flow runs given a limit.Set (flow.RunOptions.Limits). A
	// task run waits for them in the state Waiting; the wait counts
	// against the flow's timeout, not the task's Timeout. Slots are given
	// back when the attempt ends, however it ends; a retry takes them
	// again. A limit the run's Set does not define fails the run before
	// it starts (*limit.UseError). Task.Run and task.Run, which have no
	// Set, ignore Limits.
	Limits []limit.Use
}

// Spec is a task in the form the runner and the flow package work with,
// whatever its input and output types. *Task implements it.
type Spec interface {
	// Name returns the task's name, unique within a registry or a flow.
	Name() string
	// Handler returns what executors run.
	Handler() *executor.Handler
	// Options returns the task's options.
	Options() Options
}

// Task is a typed task: a function from In to Out with a name and options.
// A Task is immutable and safe for concurrent use; one Task can be run any
// number of times, concurrently, and appear in many flows.
type Task[In, Out any] struct {
	handler *executor.Handler
	opts    Options
}

var _ Spec = (*Task[int, int])(nil)

// New returns the task name running fn with opts. It panics if name is
// empty or fn is nil: those are programming errors. New does not register
// the task anywhere; see NewRegistry for tasks that run in other processes.
func New[In, Out any](name string, fn func(ctx context.Context, in In) (Out, error), opts Options) *Task[In, Out] {
	if name == "" {
		panic("task: New with an empty name")
	}
	if fn == nil {
		panic("task: New with a nil function for task " + name)
	}
	opts.Tags = append([]string(nil), opts.Tags...)
	opts.Limits = append([]limit.Use(nil), opts.Limits...)
	return &Task[In, Out]{handler: executor.NewHandler(name, fn, opts.Codec), opts: opts}
}

// Name returns the task's name.
func (t *Task[In, Out]) Name() string { return t.handler.Name() }

// Handler returns the untyped form that executors run.
func (t *Task[In, Out]) Handler() *executor.Handler { return t.handler }

// policy is what a task runner needs of a task's options, without the
// copies Options makes.
type policy struct {
	timeout, grace             time.Duration
	maxRetries                 int
	retryDelay0, retryMaxDelay time.Duration
	retryJitter                float64
	retryIf                    func(err error) bool
}

func (o *Options) policy() policy {
	return policy{timeout: o.Timeout, grace: o.Grace, maxRetries: o.MaxRetries, retryDelay0: o.RetryDelay,
		retryMaxDelay: o.RetryMaxDelay, retryJitter: o.RetryJitter, retryIf: o.RetryIf}
}

// policyOf returns spec's policy: from a *Task's options without copying
// them (fixed says so: a Task is immutable), from any other Spec's
// Options.
func policyOf(spec Spec) (p policy, fixed bool) {
	if t, ok := spec.(interface{ policy() policy }); ok {
		return t.policy(), true
	}
	o := spec.Options()
	return o.policy(), false
}

func (t *Task[In, Out]) policy() policy { return t.opts.policy() }

// Options returns a copy of the task's options.
func (t *Task[In, Out]) Options() Options {
	o := t.opts
	o.Tags = append([]string(nil), o.Tags...)
	o.Limits = append([]limit.Use(nil), o.Limits...)
	return o
}

// Run runs the task once on ex with its retries, and returns the result
// and the run's record. The result is the zero Out unless the run ended in
// Success. The run is cancelled when ctx is (and Run returns once the
// executor has reported the cancellation). See Runner for the states.
func (t *Task[In, Out]) Run(ctx context.Context, ex executor.TimeoutHandler, in In, opts RunOptions) (Out, Result) {
	res := Run(ctx, ex, t, in, opts)
	out, _ := Value[Out](res)
	return out, res
}

// Value returns r's value as an Out, and false if the run did not end
// Success or Cached, or its value is of another type.
func Value[Out any](r Result) (Out, bool) {
	if !r.State.HasValue() {
		var zero Out
		return zero, false
	}
	v, ok := r.Value.(Out)
	if !ok && r.Value == nil {
		return v, true // a nil value of an interface or pointer type
	}
	return v, ok
}

// NewRegistry returns a registry of the given tasks, for executors whose
// workers find tasks by name (subprocess.ServeIfWorker, a cluster
// worker's Options.Registry). It is the registry constructor a program
// with tasks calls; executor.NewRegistry takes bare executor.Handlers, for
// code that does not use this package. Two tasks with one name are an
// error matching executor.ErrDuplicateTask; a nil task is an error.
func NewRegistry(tasks ...Spec) (*executor.Registry, error) {
	r := &executor.Registry{}
	for _, t := range tasks {
		if t == nil {
			return nil, fmt.Errorf("task: NewRegistry with a nil task")
		}
		if err := r.Register(t.Handler()); err != nil {
			return nil, fmt.Errorf("task: %w", err)
		}
	}
	return r, nil
}

// retryDelay returns the delay before retry n (1 for the first retry).
func (o *policy) retryDelay(n int) time.Duration {
	if o.retryDelay0 <= 0 {
		return 0
	}
	limit := o.retryMaxDelay
	if limit <= 0 {
		limit = 10 * time.Minute
	}
	limit = max(limit, o.retryDelay0)
	d := float64(o.retryDelay0) * math.Pow(2, float64(n-1))
	if d > float64(limit) || math.IsInf(d, 0) {
		d = float64(limit)
	}
	jitter := o.retryJitter
	switch {
	case jitter == 0:
		jitter = 0.5
	case jitter < 0:
		jitter = 0
	case jitter > 1:
		jitter = 1
	}
	d -= d * jitter * rand.Float64()
	return time.Duration(d)
}
