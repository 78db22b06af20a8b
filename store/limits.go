package store

import (
	"context"
	"time"
)

// Limiter is a store that also holds limits shared by every process that
// uses it (see package limit): concurrency slots, taken as leases with a
// heartbeat, and token buckets for rate limits. The SQL stores
// (store/sqlite, store/postgres) implement it; limit.Options.Store takes
// one.
//
// A limit is named by (name, key): a limit's name and one key of it (a
// customer id, "" for a limit without keys). Slots and buckets come into
// being on first use; nothing needs to be declared in the store. Every
// method is safe for concurrent use, by any number of processes sharing
// the store; expiry compares against the caller's clock (see the package
// doc).
type Limiter interface {
	// ClaimSlots claims, for owner, up to len(holders) of the free or
	// expired slots 0..limit-1 of (name, key), each until now+ttl, and
	// gives the k-th claimed slot to holders[k]. It returns the claimed
	// slots' numbers, in holders' order (fewer than len(holders), or
	// none, when fewer are free: the caller asks again later). A slot is
	// free once released, or once its lease expired without a renewal.
	// Slots numbered limit or above (left by a larger limit) are never
	// claimed. A limit, ttl or owner of zero or less, or an empty holder,
	// is an error.
	ClaimSlots(ctx context.Context, name, key string, limit int, owner string, holders []string, ttl time.Duration) ([]int, error)

	// SwapSlots gives back owner's slots in release (as ReleaseSlots,
	// matching N and Holder; a release with Next set hands the slot on to
	// the holder Next of the same owner instead, renewing it) and then
	// claims slots for holders (as ClaimSlots), in one transaction: one
	// round trip for a process that hands slots on to its waiters. Either
	// list may be empty. SwapSlots sets each release's Expires: the
	// lease's new end for a hand-on that took effect, the release's time
	// for a release that did, and the zero time for one that found the
	// slot no longer owner's for Holder (its lease expired and another
	// claimed it): then the holders of owner that used the slot ran
	// beside the limit, and Next holds nothing. One slot may be in
	// release more than once (handed on from a to b, then from b to c):
	// a slot's entries take effect in their order in release.
	SwapSlots(ctx context.Context, name, key string, limit int, owner string, release []Slot, holders []string, ttl time.Duration) ([]int, error)

	// ReleaseSlots frees the given slots of (name, key) that owner still
	// holds for the given holders (slots[k] for holders[k]). Releasing a
	// slot that expired and went to another holder does nothing.
	ReleaseSlots(ctx context.Context, name, key, owner string, slots []int, holders []string) error

	// RenewSlots extends every slot owner holds, of any limit, to now+ttl
	// (the heartbeat) and returns how many it renewed. A slot of owner's
	// that expired but was not taken by another is renewed too.
	RenewSlots(ctx context.Context, owner string, ttl time.Duration) (int, error)

	// Slots returns the held (claimed and unexpired) slots of (name,
	// key), ordered by number.
	Slots(ctx context.Context, name, key string) ([]Slot, error)

	// TakeTokens takes up to n start tokens from the token bucket of
	// (name, key), whose tokens come one per interval, of which at most
	// burst are kept (the bucket starts full). It returns how many it
	// took (from 0 to n) and, when fewer than n, the time at which the
	// next token comes. The bucket is exact across processes: over any
	// span of time T, at most burst + T/interval tokens are taken in
	// all. An interval, burst or n of zero or less is an error.
	TakeTokens(ctx context.Context, name, key string, interval time.Duration, burst, n int) (taken int, next time.Time, err error)

	// ReserveTokens is TakeTokens that also hands out tokens that come
	// within horizon from now: it returns each token's time (ascending;
	// now for the ones there already), and the next token's time when
	// fewer than n. A token is spent when reserved: its holder starts at
	// its time, never before, so that starts keep to the bucket however
	// late the store answers. A negative horizon is an error.
	ReserveTokens(ctx context.Context, name, key string, interval time.Duration, burst, n int, horizon time.Duration) (times []time.Time, next time.Time, err error)
}

// Slot is one held slot of a concurrency limit.
type Slot struct {
	N       int    // the slot's number, from 0
	Owner   string // the process holding it (its heartbeat renews it)
	Holder  string // what holds it: the flow package names the attempt, "<run id>/<label>#<attempt>"
	Expires time.Time
	// Next, in SwapSlots' release only, hands the slot on to this holder
	// instead of freeing it (and SwapSlots sets Expires, see there).
	Next string
}
