// Package store is the run store contract: what the flow package records
// about a run so that no completed work is lost or done twice, and what a
// resume, a restart or a cache lookup reads back. Implementations live in
// their own packages (store/sqlite, the embedded default; store/postgres,
// for several processes and machines) and all pass one conformance suite,
// store/storetest. Executors never see a store.
//
// A store holds runs, task runs (one per node or mapped child, keyed by
// label), attempts, the ordered state changes of every task run, a lease
// per run (its owner and expiry), and cache entries. Values (task results,
// parameters) are opaque bytes, encoded by the caller with the task's
// codec; states and error classes are opaque strings (the task package's
// state names and the executor package's classes), so a store depends on
// nothing above it.
//
// Writes to a run come in a Batch, applied atomically and idempotently:
// applying one batch twice leaves the store as applying it once, so a
// writer that lost its connection mid-commit can apply it again. A batch
// carries its writer's owner name and is refused with a *LeaseError when
// another owner holds the run's lease (fencing), so two processes never
// both record one run.
//
// Errors are typed: ErrNotFound, ErrExists, ErrLeaseHeld (a *LeaseError),
// ErrFlowChanged, ErrSchemaNewer (a *SchemaError), ErrCorrupt (a
// *CorruptError) and ErrUnavailable (the store could not be reached within
// its retry bound). Check them with errors.Is and errors.As.
//
// Times are stored with nanosecond precision and come back in the local
// time zone; a zero time means "not yet" (a run not ended, an attempt still
// running). Lease and cache expiry compare against the caller's clock: the
// processes that share a store must keep their clocks within a small
// fraction of the lease TTL of each other.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store is a run store. Every method is safe for concurrent use. A method
// called after Close fails with ErrClosed. Methods return ErrUnavailable
// (wrapped) when the store cannot be reached within its implementation's
// retry bound; they never report success for a write that is not durable.
type Store interface {
	// CreateRun records a new run, with its lease held by run.Owner until
	// run.LeaseExpires (no lease if Owner is empty). A run whose ID is
	// taken is refused with ErrExists, and nothing changes. An empty ID is
	// an error.
	CreateRun(ctx context.Context, run Run) error

	// Run returns the run id, or ErrNotFound.
	Run(ctx context.Context, id string) (Run, error)

	// Runs returns the runs that match filter, oldest first (newest
	// first with filter.Newest); runs created at the same time are
	// ordered by id.
	Runs(ctx context.Context, filter RunFilter) ([]Run, error)

	// Apply applies b atomically: all of it is durable when Apply returns
	// nil, none of it when it returns an error other than ErrUnavailable
	// (after which the outcome is unknown and applying b again is safe).
	// It fails with ErrNotFound if b.RunID is not a run, and with a
	// *LeaseError if b.Owner is not empty and another owner holds the
	// run's unexpired lease. An empty batch only checks those.
	Apply(ctx context.Context, b *Batch) error

	// TaskRuns returns a run's task runs, ordered by label. A run without
	// any, or an unknown run, gives none.
	TaskRuns(ctx context.Context, runID string) ([]TaskRun, error)

	// Attempts returns a run's attempts, ordered by label and number.
	Attempts(ctx context.Context, runID string) ([]Attempt, error)

	// Changes returns a run's state changes in the order of their Seq.
	Changes(ctx context.Context, runID string) ([]Change, error)

	// Reservations returns a run's reservations (Batch.Reserve), one per
	// node, ordered by node. A run without any, or an unknown run, gives
	// none.
	Reservations(ctx context.Context, runID string) ([]Reservation, error)

	// Acquire takes or renews run id's lease for owner until now+ttl. It
	// succeeds when the lease is free, expired, or already owner's, and
	// fails with a *LeaseError naming the holder otherwise; an unknown
	// run is ErrNotFound. A ttl of zero or less is an error.
	Acquire(ctx context.Context, id, owner string, ttl time.Duration) (Lease, error)

	// Release gives up owner's lease on run id. Releasing a lease that
	// owner does not hold (expired and taken, or never held) does nothing.
	Release(ctx context.Context, id, owner string) error

	// Claim looks up the cache entry key. When an unexpired entry exists
	// it returns it and hit = true. Otherwise it claims the key for owner
	// until now+ttl and returns hit = false: the caller computes the value
	// and stores it with Batch.Cache (or gives the claim up with
	// Batch.Unclaim). While another owner's claim is unexpired, Claim
	// fails with a *LeaseError, and the caller waits and asks again: so
	// concurrent runs with one key, in any process sharing the store,
	// compute it once. Claiming a key already claimed by owner renews it.
	Claim(ctx context.Context, key, owner string, ttl time.Duration) (entry CacheEntry, hit bool, err error)

	// CacheEntries returns the unexpired cache entries whose key starts
	// with prefix ("" for all), ordered by key.
	CacheEntries(ctx context.Context, prefix string) ([]CacheEntry, error)

	// Invalidate deletes the cache entries (and claims) whose key starts
	// with prefix ("" for all) and returns how many entries it deleted.
	Invalidate(ctx context.Context, prefix string) (int, error)

	// DeleteRuns deletes the runs last updated before cutoff, with their
	// task runs, attempts, changes and requests, except runs whose lease
	// is still held, and returns how many runs it deleted. It also
	// deletes cache entries that expired before cutoff.
	DeleteRuns(ctx context.Context, cutoff time.Time) (int, error)

	// RequestCancel asks the driver of the unfinished run runID (a
	// process in flow.Run, Resume or Restart with this store) to cancel
	// it: the driver sees the request within its poll interval (about a
	// second) and stops the run as if its context had ended, so the run
	// ends Cancelled. The request is recorded with the time it was made
	// (Run.CancelRequested) and cleared when the run ends, however it
	// ends: a run that finishes before its driver looks ends as it would
	// have. A request for a run nobody drives (its owner died) waits for
	// the process that resumes it, which then cancels it at once.
	// Requesting again while a request is pending does nothing and keeps
	// the first time. An unknown run is ErrNotFound; a finished run is a
	// *RequestError matching ErrFinished, and nothing is recorded.
	RequestCancel(ctx context.Context, runID string) error

	// RequestRetry asks that the finished run runID be restarted from its
	// failures (as flow.Restart does: its failed, cancelled and never-run
	// task runs run again, successful ones keep their results). A process
	// running flow.Serve with the run's flow performs it, once, whichever
	// of several such processes sees it first. The request is recorded
	// with its time (Run.RetryRequested) and cleared when the run is
	// recorded as running again (by Serve, or by a direct flow.Restart).
	// Requesting again while a request is pending does nothing and keeps
	// the first time. An unknown run is ErrNotFound; a run that has not
	// ended, or that ended in a successful state (Success, Skipped,
	// Cached), is a *RequestError matching ErrNotRetryable, and nothing
	// is recorded.
	RequestRetry(ctx context.Context, runID string) error

	// Close releases the store's resources. Calls after Close fail with
	// ErrClosed; Close is idempotent.
	Close() error
}

// Run is one flow run as recorded.
type Run struct {
	ID       string
	Flow     string // the flow's name
	FlowHash string // the flow's structural hash (see flow.Flow.Hash)
	Params   []byte // the run's parameters, encoded by the flow
	// State is the run's state: "Running" until it ends, then the flow's
	// final state name.
	State string
	// ErrClass and ErrMessage say why a finished run did not succeed.
	ErrClass     string
	ErrMessage   string
	Owner        string    // the lease holder; "" when none
	LeaseExpires time.Time // when the holder's lease ends
	Created      time.Time
	Updated      time.Time // the last write to the run, its tasks included
	Ended        time.Time // zero until the run ended

	// CancelRequested and RetryRequested are when a pending
	// Store.RequestCancel or Store.RequestRetry was made; zero when none
	// is pending. They are read-only: filled by Store.Run and Store.Runs,
	// ignored by CreateRun.
	CancelRequested, RetryRequested time.Time
}

// Finished reports whether the run has ended.
func (r *Run) Finished() bool { return !r.Ended.IsZero() }

// RunFilter selects runs for Store.Runs. The zero value selects every run.
type RunFilter struct {
	Flow string // only runs of this flow, when not empty
	// Unfinished selects only runs that have not ended.
	Unfinished bool
	// LeaseExpiredBy, when not zero, selects only runs without a lease or
	// whose lease expired at or before it: runs nobody is driving, which
	// Acquire at that instant would give to a new owner.
	LeaseExpiredBy time.Time
	Limit          int // at most this many runs; zero or less means no limit

	// States, when not empty, selects only runs in one of these states
	// ("Running", "Success", "Failed", ...). A nil or empty slice selects
	// every state.
	States []string
	// Since and Until, when not zero, select only runs created at or
	// after Since and before Until (a half-open interval: a run created
	// exactly at Until is left out). Until at or before Since selects
	// nothing.
	Since, Until time.Time
	// Newest orders the runs newest first (by creation time, then id
	// descending); the default is oldest first. With Limit, Newest gives
	// the most recent runs.
	Newest bool
	// RetryRequested selects only runs with a pending retry request
	// (Store.RequestRetry), for the processes that perform them.
	RetryRequested bool
}

// TaskRun is one task run of a flow run: a node's or a mapped child's,
// keyed by its label ("name" or "name[i]").
type TaskRun struct {
	RunID string
	Label string
	State string // the task state's name ("Running", "Success", ...)
	// Value is the result encoded with the task's codec, for the states
	// that have one (Success, Cached); nil otherwise.
	Value      []byte
	ErrClass   string
	ErrMessage string
	Attempts   int // attempts made so far
	Start      time.Time
	End        time.Time // zero while the task run is not final
	CacheKey   string    // the cache key the result was looked up or stored under, if any
}

// Attempt is one attempt of a task run.
type Attempt struct {
	RunID      string
	Label      string
	N          int       // from 1
	State      string    // "Running" until it ends, then its outcome's state name
	Start      time.Time //
	End        time.Time // zero while it runs
	ErrClass   string
	ErrMessage string
	Worker     string // where it ran, as the executor names it
}

// Duration returns End - Start, or zero for an attempt still running.
func (a *Attempt) Duration() time.Duration {
	if a.End.IsZero() || a.Start.IsZero() {
		return 0
	}
	return a.End.Sub(a.Start)
}

// Change is one state change of a task run. Seq orders a run's changes; the
// writer assigns it (increasing within a run), so that applying a batch
// again does not record its changes twice.
type Change struct {
	RunID      string
	Seq        int64
	Label      string
	Attempt    int
	From, To   string
	ErrClass   string
	ErrMessage string
	Time       time.Time
}

// Lease is a run's lease: who drives the run, until when.
type Lease struct {
	Owner   string
	Expires time.Time
}

// CacheEntry is a cached task result.
type CacheEntry struct {
	Key     string
	Value   []byte // encoded with the task's codec
	Created time.Time
	Expires time.Time // zero means never
}

// RunUpdate changes a run's state; see Batch.
type RunUpdate struct {
	State      string
	ErrClass   string
	ErrMessage string
	Ended      time.Time // non-zero ends the run
}

// Batch is a group of writes to one run, applied atomically by
// Store.Apply. Task runs and attempts are upserted by their keys (run and
// label; run, label and number), changes are inserted by (run, Seq) and
// kept if already there, cache entries are upserted and end any claim on
// their key, Unclaim gives up claims the batch's Owner holds, and
// reservations are upserted by node, keeping the larger Children (with
// its Time): a reservation never shrinks.
type Batch struct {
	RunID string
	// Owner, when not empty, must hold the run's lease (or the lease must
	// be free or expired) for the batch to apply.
	Owner    string
	Run      *RunUpdate // nil leaves the run's state alone
	TaskRuns []TaskRun
	Attempts []Attempt
	Changes  []Change
	Cache    []CacheEntry
	Unclaim  []string // cache keys
	Reserve  []Reservation
}

// Empty reports whether the batch writes nothing.
func (b *Batch) Empty() bool {
	return b.Run == nil && len(b.TaskRuns) == 0 && len(b.Attempts) == 0 && len(b.Changes) == 0 &&
		len(b.Cache) == 0 && len(b.Unclaim) == 0 && len(b.Reserve) == 0
}

// Reset empties the batch for reuse, keeping its RunID and Owner and its
// slices' memory.
func (b *Batch) Reset() {
	clear(b.TaskRuns)
	clear(b.Attempts)
	clear(b.Changes)
	clear(b.Cache)
	clear(b.Reserve)
	b.Run, b.TaskRuns, b.Attempts, b.Changes, b.Cache, b.Unclaim = nil, b.TaskRuns[:0], b.Attempts[:0], b.Changes[:0], b.Cache[:0], b.Unclaim[:0]
	b.Reserve = b.Reserve[:0]
}

// Sentinel errors. Each typed error below matches one of them.
var (
	// ErrNotFound: the run (or entry) does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a run with that id already exists.
	ErrExists = errors.New("store: already exists")
	// ErrLeaseHeld: another owner holds the lease (a *LeaseError).
	ErrLeaseHeld = errors.New("store: lease held by another owner")
	// ErrFlowChanged: a resume was refused because the flow is not the
	// one the run was recorded with (the flow package returns it).
	ErrFlowChanged = errors.New("store: flow changed since the run was recorded")
	// ErrSchemaNewer: the store was written by newer code (a *SchemaError).
	ErrSchemaNewer = errors.New("store: schema is newer than this code")
	// ErrCorrupt: recorded data cannot be read (a *CorruptError).
	ErrCorrupt = errors.New("store: corrupt data")
	// ErrUnavailable: the store could not be reached within its retry
	// bound; the outcome of a write is unknown and applying it again is
	// safe.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// LeaseError is a lease (a run's, or a cache key's claim) held by another
// owner. It matches ErrLeaseHeld.
type LeaseError struct {
	What    string // "run <id>" or "cache key <key>"
	Holder  string
	Expires time.Time
}

// Error names the holder and the expiry.
func (e *LeaseError) Error() string {
	return fmt.Sprintf("store: %s is leased by %q until %s", e.What, e.Holder, e.Expires.Format(time.RFC3339Nano))
}

// Is matches ErrLeaseHeld.
func (e *LeaseError) Is(target error) bool { return target == ErrLeaseHeld }

// SchemaError is a store whose schema version is newer than this code
// knows. It matches ErrSchemaNewer.
type SchemaError struct {
	Have, Want int // the store's version, this code's
}

// Error names both versions.
func (e *SchemaError) Error() string {
	return fmt.Sprintf("store: schema version %d is newer than this code's %d; upgrade the program", e.Have, e.Want)
}

// Is matches ErrSchemaNewer.
func (e *SchemaError) Is(target error) bool { return target == ErrSchemaNewer }

// CorruptError is recorded data that cannot be read: a damaged database
// file, or a recorded result that no longer decodes into its task's type.
// It matches ErrCorrupt.
type CorruptError struct {
	What string // what could not be read
	Err  error  // the underlying error
}

// Error names what could not be read and why.
func (e *CorruptError) Error() string { return fmt.Sprintf("store: corrupt %s: %v", e.What, e.Err) }

// Unwrap returns the underlying error.
func (e *CorruptError) Unwrap() error { return e.Err }

// Is matches ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// FlowChangedError is a resume refused because the flow's structural hash
// (or name) differs from the recorded one. It matches ErrFlowChanged.
type FlowChangedError struct {
	RunID              string
	Flow, RecordedFlow string
	Hash, RecordedHash string
}

// Error names both identities.
func (e *FlowChangedError) Error() string {
	return fmt.Sprintf("store: run %s was recorded with flow %q (hash %s), not %q (hash %s): refusing to resume it with a changed flow",
		e.RunID, e.RecordedFlow, short(e.RecordedHash), e.Flow, short(e.Hash))
}

// Is matches ErrFlowChanged.
func (e *FlowChangedError) Is(target error) bool { return target == ErrFlowChanged }

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
