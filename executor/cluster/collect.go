package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowline-go/flowline/executor"
)

var _ executor.Collector = (*Executor)(nil)

// Collect implements executor.Collector: it answers call with the result
// recorded under its identity (executor.Call.ID: run, task and attempt),
// by any submitter, when the result bucket still holds one (a result
// stays ResultTTL while no submitter has taken it, and TakenTTL once one
// has), without running anything. Otherwise it publishes call as Submit
// does, under the same message id, so that:
//
//   - an attempt still queued or running, published within DedupWindow,
//     is not queued again: its result completes the Future when a worker
//     records it;
//   - an attempt that was never published (its submitter died first) runs
//     now, under its own number;
//   - an attempt published longer ago than DedupWindow is queued again,
//     and a worker looks in the bucket before running it: a result
//     recorded meanwhile answers it. One still running on a worker past
//     the window can run a second time (delivery is at least once; the
//     first result recorded stands).
//   - an attempt whose result a submitter took longer than TakenTTL ago
//     runs again: that submitter had the result, and a durable run
//     records it before it goes on, so only a submitter that died in
//     between leaves it to a resume (keep TakenTTL above the time a
//     resume takes to begin: flow's LeaseTTL, 30 s by default, and more).
//
// The Future of a collected result reports its worker and deliveries as
// recorded; the task's log lines went to the submitter that published the
// attempt, not to call.Logger. Collect waits for room and fails as Submit
// does, and fails at once for a call without a RunID.
func (e *Executor) Collect(ctx context.Context, call executor.Call) (*executor.Future, error) {
	if call.RunID == "" {
		return nil, errors.New("executor/cluster: Collect needs a call with a RunID: it collects by the call's identity")
	}
	return e.submit(ctx, call, true, true)
}

// collected reads p's result from the bucket and, if there is one,
// completes p with it and reports true. p is already in the map, so a
// result recorded after the read reaches it through the watcher.
func (e *Executor) collected(ctx context.Context, p *pending) bool {
	gctx, cancel := context.WithTimeout(ctx, jobTimeout)
	entry, err := e.obj.kv.Get(gctx, p.key)
	cancel()
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			// Publishing is still right: a duplicate is not queued twice.
			e.logger.Debug("cannot read a collected call's result; publishing it", "call", p.call.String(),
				"error", fmt.Errorf("executor/cluster: %w", err))
		}
		return false
	}
	e.deliver(p.key, entry.Value())
	return true
}
