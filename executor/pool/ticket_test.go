package pool

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestTicketBeginRacingQueued races a worker that starts a call it popped
// with the submitter that marks the call queued after its push: the call
// was not cancelled, so the worker must always get it. Before begin read
// the state once per try, its two compare-and-swaps could both fail when
// the submitter's move fell between them, and the call was dropped,
// never answered (seen in the 1000-submitter stress run).
func TestTicketBeginRacingQueued(t *testing.T) {
	w := &worker{}
	dropped := 0
	const rounds = 20000
	for i := range rounds {
		tk := &ticket{}
		var ready atomic.Int32
		var began, cancelled bool
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			ready.Add(1)
			for ready.Load() < 2 {
			}
			cancelled = tk.queued()
		}()
		go func() {
			defer wg.Done()
			ready.Add(1)
			for ready.Load() < 2 {
			}
			began = tk.begin(w, uint64(i))
		}()
		wg.Wait()
		if cancelled {
			t.Fatalf("round %d: queued reported a cancellation that never happened", i)
		}
		if !began {
			dropped++
		}
		if s := tk.state.Load(); s != tkRunning {
			t.Fatalf("round %d: state %d after both, want tkRunning", i, s)
		}
	}
	if dropped > 0 {
		t.Fatalf("begin gave up %d of %d calls that nobody cancelled", dropped, rounds)
	}
}

// TestTicketClaimRacingQueued is the same race for Shutdown's claim of a
// call it found in the queue: nobody cancelled it, so Shutdown must get it
// (and answer it), never leave it to a cancellation that will not come.
func TestTicketClaimRacingQueued(t *testing.T) {
	const rounds = 20000
	lost := 0
	for range rounds {
		tk := &ticket{stop: func() bool { return true }}
		var ready atomic.Int32
		var claimed bool
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			ready.Add(1)
			for ready.Load() < 2 {
			}
			tk.queued()
		}()
		go func() {
			defer wg.Done()
			ready.Add(1)
			for ready.Load() < 2 {
			}
			claimed = tk.claim()
		}()
		wg.Wait()
		if !claimed {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("claim gave up %d of %d calls that nobody cancelled", lost, rounds)
	}
}
