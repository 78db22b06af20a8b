// Package executor holds the contracts that every flowline executor
// keeps, and nothing else: TimeoutHandler (run one call under a limit and
// say how the limit is enforced), Executor (a TimeoutHandler that owns
// resources and reports Stats), Call and Future, the Handler and Registry
// by which workers in other processes find tasks by name, and the typed
// errors every executor returns.
//
// Pick an implementation in its own package: executor/local (inline, for
// tests and debugging), executor/pool (bounded goroutines, soft limits),
// executor/subprocess (warm worker processes, hard limits) or
// executor/cluster (workers on other machines, over NATS JetStream).
// Run is the one-call form of the contract; the task and flow packages
// build retries and DAGs on it.
//
// Errors are values to inspect with errors.Is and errors.As, never by
// their text:
//
//	out, err := executor.Run(ctx, ex, executor.Call{Handler: h, Input: in, Limit: time.Second})
//	var te *executor.TimeoutError
//	var pe *executor.PanicError
//	switch {
//	case errors.As(err, &te):
//		// overran te.Limit; te.Enforcement says Soft or Hard,
//		// te.Stopped whether the work is known to have stopped
//	case errors.Is(err, context.Canceled):
//		// the caller gave up; never a timeout
//	case errors.As(err, &pe):
//		// the task panicked, or called runtime.Goexit
//		// (errors.Is(err, executor.ErrGoexit)): pe.Value, pe.Stack
//	case errors.Is(err, executor.ErrCrash), errors.Is(err, executor.ErrBadInput):
//		// a worker process died; the input did not fit the task
//	}
//
// Across a process or machine boundary an error keeps its message and its
// Class (ClassOf): the executor package's own types are rebuilt, other
// errors come back as *RemoteError. Only the executor's *TimeoutError is a
// timeout; a context.DeadlineExceeded of the task's own making is its
// failure.
//
// Two rules hold for every executor (see TimeoutHandler): a call is late
// when the executor observes its return at or after start + Limit, and
// then only; Submit waits for room while its context allows (returning
// ctx.Err() if it ends first), and executors with a bounded queue offer
// TrySubmit (TrySubmitter), which fails at once with ErrQueueFull.
package executor
