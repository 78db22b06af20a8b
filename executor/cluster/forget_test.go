package cluster

import (
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sentLog records what a forgetBatch's timer sends, batch by batch.
type sentLog struct {
	mu      sync.Mutex
	batches [][]*nats.Msg
}

func (l *sentLog) send(batch []*nats.Msg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, batch)
}

func (l *sentLog) sizes() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n []int
	for _, b := range l.batches {
		n = append(n, len(b))
	}
	return n
}

func forgetMsg(i int) *nats.Msg {
	return &nats.Msg{Subject: "$KV.b.k" + strconv.Itoa(i), Data: make([]byte, 10)}
}

// TestForgetBatchTimes: a rewrite waits forgetDelay at most, sent with
// the ones queued meanwhile; a full batch goes at once to the caller;
// close hands back what waits, and rewrites after it go at once.
func TestForgetBatchTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log sentLog
		b := &forgetBatch{send: log.send}

		require.Nil(t, b.add(forgetMsg(0)))
		time.Sleep(forgetDelay / 2)
		require.Nil(t, b.add(forgetMsg(1)))
		synctest.Wait()
		assert.Empty(t, log.sizes(), "nothing is sent before forgetDelay")
		time.Sleep(forgetDelay / 2)
		synctest.Wait()
		assert.Equal(t, []int{2}, log.sizes(), "both go forgetDelay after the first")

		// A full batch is the caller's to send, with no wait.
		var full []*nats.Msg
		for i := range forgetMaxMsgs {
			full = b.add(forgetMsg(10 + i))
			if i < forgetMaxMsgs-1 {
				require.Nil(t, full)
			}
		}
		require.Len(t, full, forgetMaxMsgs)
		assert.Equal(t, "$KV.b.k10", full[0].Subject)
		time.Sleep(2 * forgetDelay)
		synctest.Wait()
		assert.Equal(t, []int{2}, log.sizes(), "the timer armed for the full batch finds nothing to send")

		// Bytes fill a batch too.
		big := &nats.Msg{Subject: "$KV.b.big", Data: make([]byte, forgetMaxBytes)}
		assert.Len(t, b.add(big), 1)

		require.Nil(t, b.add(forgetMsg(100)))
		left := b.close()
		require.Len(t, left, 1, "close hands back what waits")
		assert.Equal(t, "$KV.b.k100", left[0].Subject)
		time.Sleep(2 * forgetDelay)
		synctest.Wait()
		assert.Equal(t, []int{2}, log.sizes(), "the stopped timer sends nothing")

		late := b.add(forgetMsg(101))
		require.Len(t, late, 1, "after close a rewrite goes at once")
		assert.Empty(t, b.close(), "a second close has nothing")
	})
}

// TestForgetBatchCloseWaitsForTheTimer: close while the timer's function
// is sending returns only once that send has ended.
func TestForgetBatchCloseWaitsForTheTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sending := make(chan struct{})
		release := make(chan struct{})
		var sent []*nats.Msg
		b := &forgetBatch{send: func(batch []*nats.Msg) {
			close(sending)
			<-release
			sent = batch
		}}
		require.Nil(t, b.add(forgetMsg(0)))
		<-sending // the timer fired and is sending
		closed := make(chan []*nats.Msg)
		go func() { closed <- b.close() }()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("close returned while the timer's send was running")
		default:
		}
		close(release)
		assert.Empty(t, <-closed)
		assert.Len(t, sent, 1)
	})
}

// TestForgetBatchLosesNothingUnderRace: many goroutines add rewrites on
// the real clock while the timer fires and close runs; every rewrite is
// handed out exactly once (sent by the timer, returned by add or by
// close).
func TestForgetBatchLosesNothingUnderRace(t *testing.T) {
	for round := range 20 {
		var log sentLog
		b := &forgetBatch{send: log.send}
		const adders, each = 8, 200
		var (
			mu     sync.Mutex
			direct []*nats.Msg
			wg     sync.WaitGroup
		)
		for a := range adders {
			wg.Go(func() {
				for i := range each {
					if got := b.add(forgetMsg(a*each + i)); got != nil {
						mu.Lock()
						direct = append(direct, got...)
						mu.Unlock()
					}
					if i%50 == 0 {
						time.Sleep(time.Duration(i%3) * time.Millisecond)
					}
				}
			})
		}
		if round%2 == 0 {
			time.Sleep(time.Millisecond)
		}
		left := b.close() // while some adders still run
		wg.Wait()
		seen := map[string]int{}
		for _, batch := range append(log.batches, direct, left) {
			for _, m := range batch {
				seen[m.Subject]++
			}
		}
		require.Len(t, seen, adders*each, "round %d: every rewrite handed out", round)
		for subj, n := range seen {
			require.Equal(t, 1, n, "round %d: %s handed out once", round, subj)
		}
	}
}
