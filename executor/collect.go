package executor

import "context"

// Collector is implemented by executors that keep an attempt's result by
// the attempt's identity (RunID, task name and Attempt: Call.ID) beyond
// the life of the process that submitted it, as executor/cluster does
// (its results stay in a bucket, its queued calls in a stream). A durable
// flow run resumed after a crash collects, through it, the attempts that
// were in flight, instead of running them again: a call that a worker
// finished while its submitter was down is answered with the recorded
// result.
//
// In-process executors do not implement it: their calls die with the
// process, and a resume runs such an attempt again under a new number.
type Collector interface {
	// Collect returns a Future for call, an attempt that may have been
	// submitted before under the same RunID, task and Attempt, by this
	// process or by one that has died since. If the executor still holds
	// that attempt's result, the Future completes with it and nothing
	// runs. If the attempt is still queued or running, the Future
	// completes with its result when it ends, and no second copy runs
	// (within the executor's deduplication bounds, which it documents).
	// Otherwise (the attempt was never accepted, or its result is no
	// longer kept) the call is submitted as Submit would, under the same
	// identity. Collect fails as Submit does, and for a call without a
	// RunID, which has no identity to collect by.
	Collect(ctx context.Context, call Call) (*Future, error)
}
