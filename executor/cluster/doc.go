// Package cluster runs calls on other processes and machines, over NATS
// JetStream. Pick it when one machine is not enough, or when calls must
// survive the death of the process that runs them; pick executor/pool or
// executor/subprocess when one machine is.
//
// The Executor publishes one message per call to a work-queue stream.
// A call with a RunID is deduplicated: its message id is its run, task
// and attempt (executor.Call.ID), so the same attempt submitted again
// within the stream's dedup window is not queued twice and is answered
// with the first one's result. A call without a RunID is never
// deduplicated: it gets an id of its own (a random submitter id and a
// sequence number before "/task/attempt"), so no call is ever answered
// with another call's result. Workers are the user's own binary, which registers the same tasks
// (Registry) and serves them with Serve or NewWorker: each worker slot
// pulls one call when it is free, runs it on the worker's executor
// (executor/local, executor/pool, executor/subprocess), tells JetStream
// the call is in progress while it runs, writes the result to a key-value
// bucket with create-if-absent, and acknowledges the message. The
// Executor watches the bucket with one watcher and completes the waiting
// Future.
//
// Delivery is at least once. A worker that dies stops heartbeating; its
// calls are delivered to another worker after the consumer's ack wait, so
// a call can run twice (the first result recorded stands; later ones are
// refused). Tasks with side effects should be idempotent: use
// executor.CallInfo(ctx) (task, run, attempt) as an idempotency key. A
// call delivered MaxDeliveries times without a result fails with an
// *executor.CrashError and is removed from the stream. Future.Deliveries
// tells the caller which delivery of its call was recorded, so a
// redelivery is visible (1 for a call run once).
//
// Timeouts are enforced where calls run, by the workers' executors, soft
// or hard: declare which in Options.Enforcement. The Executor also keeps a
// backstop: a call whose result has not arrived by its limit, grace, the
// consumer's ack wait and Options.TimeoutMargin after it started on a
// worker fails with an *executor.TimeoutError that is Soft and not
// Stopped (the submitter heard nothing and cannot know), unless a result
// was recorded by then: a recorded result always wins. Cancelling the
// context given to Submit cancels the call on its worker and completes
// the Future with an *executor.CanceledError: at once with Soft declared
// or when no worker has reported the call started; with Hard declared
// and a worker running it, once that worker reports that its executor
// returned the call (its process group is dead), or after the call's
// grace and TimeoutMargin without a report.
//
// Sizes: an input whose message is over the server's maximum payload is
// an *executor.InputError at Submit, and a result over it an
// *executor.OutputError, answered at once.
//
// The Executor and workers connect to a real NATS server or cluster by
// URL, or to an embedded server in the same process: package
// executor/cluster/natsserver starts one (a temporary store, no network
// port unless asked), so tests and examples need nothing installed. That
// package is apart so that a program that only connects to a URL links no
// server code (about 9 MB of binary less; see docs/cluster.md).
//
//	srv, err := natsserver.Start(natsserver.Options{})
//	...
//	ex, err := cluster.New(cluster.Options{
//		Connection: cluster.Connection{Server: srv},
//		StopServer: true, // Shutdown stops srv too
//	})
//
// See docs/cluster.md for operations.
package cluster
