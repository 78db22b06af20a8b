package pool

import (
	"math/bits"
	"sync/atomic"
)

// ring is the queue: a bounded FIFO of jobs that submitters push to and
// workers pop from without a lock (Dmitry Vyukov's bounded MPMC queue:
// each slot has a sequence number that says whose turn it is). Submitters
// touch the tail and workers the head, each on a cache line of its own,
// so a submitter and the workers it feeds do not take turns on one mutex
// for every call.
//
// It holds at most limit jobs, exactly; its slots are limit rounded up to
// a power of two, and at least two. A ring of limit zero holds nothing.
type ring struct {
	slots []slot
	mask  uint64
	limit uint64
	exact bool // limit is not the slot count: push also checks the length

	_    [64]byte
	tail atomic.Uint64 // the next position to push to
	_    [56]byte
	head atomic.Uint64 // the next position to pop from
	_    [56]byte
}

// slot is one job and its turn: seq == pos when it is free for the push
// of position pos, pos+1 once that push has written it, and pos+len(slots)
// once it has been popped, free for the next round.
type slot struct {
	seq atomic.Uint64
	j   job
}

func newRing(limit int) *ring {
	r := &ring{limit: uint64(limit)}
	if limit == 0 {
		return r
	}
	// At least two slots: with one, "pushed at pos" and "free for pos+1"
	// would be the same sequence number.
	n := max(2, 1<<bits.Len(uint(limit-1)))
	r.slots = make([]slot, n)
	r.mask = uint64(n - 1)
	r.exact = n != limit
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// push appends j and reports whether there was room.
func (r *ring) push(j *job) bool {
	if r.limit == 0 {
		return false
	}
	pos := r.tail.Load()
	for {
		if r.exact && pos-r.head.Load() >= r.limit {
			return false
		}
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch d := int64(seq - pos); {
		case d == 0:
			if r.tail.CompareAndSwap(pos, pos+1) {
				s.j = *j
				s.seq.Store(pos + 1)
				return true
			}
			pos = r.tail.Load()
		case d < 0:
			return false // the slot of the previous round is not popped yet: full
		default:
			pos = r.tail.Load() // another submitter took pos
		}
	}
}

// pop moves the oldest job into *j and reports whether there was one.
func (r *ring) pop(j *job) bool {
	if r.limit == 0 {
		return false
	}
	pos := r.head.Load()
	for {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch d := int64(seq - (pos + 1)); {
		case d == 0:
			if r.head.CompareAndSwap(pos, pos+1) {
				*j = s.j
				s.j = job{} // the queue holds no input or context of a call it gave away
				s.seq.Store(pos + r.mask + 1)
				return true
			}
			pos = r.head.Load()
		case d < 0:
			return false // not pushed yet: empty
		default:
			pos = r.head.Load() // another worker took pos
		}
	}
}

// len returns how many jobs are queued, or were a moment ago.
func (r *ring) len() uint64 {
	h := r.head.Load()
	t := r.tail.Load()
	if t < h {
		return 0
	}
	return t - h
}
