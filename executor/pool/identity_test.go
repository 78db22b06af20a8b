package pool_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/pool"
)

// kept is what a task that kept its context saw of it, later.
type kept struct {
	want, got string
}

// keepers runs calls with Go, each of another identity (attempt), on one
// worker. Each task hands its context to a goroutine that looks at the
// identity only after later calls have run on the same worker, and
// reports what it saw then.
func keepers(t *testing.T, n int, later func()) []kept {
	ex := pool.New(pool.Options{Workers: 1})
	var wg sync.WaitGroup
	out := make([]kept, n)
	h := executor.NewHandler("keeper", func(ctx context.Context, i int) (struct{}, error) {
		wg.Go(func() {
			later()
			got := "no identity"
			if id, ok := executor.CallInfo(ctx); ok {
				got = fmt.Sprintf("%s/%s/%d", id.Task, id.RunID, id.Attempt)
			}
			out[i] = kept{want: fmt.Sprintf("keeper/run%d/%d", i%3, i+1), got: got}
		})
		return struct{}{}, nil
	}, nil)
	for i := range n {
		require.NoError(t, ex.Go(context.Background(),
			executor.Call{Handler: h, Input: i, RunID: fmt.Sprintf("run%d", i%3), Attempt: i + 1}))
	}
	require.NoError(t, ex.Shutdown(context.Background()))
	wg.Wait()
	return out
}

func TestAKeptContextKeepsItsOwnIdentity(t *testing.T) {
	// More calls than one block of contexts, so that blocks are
	// exhausted and replaced while old contexts are still held.
	const n = 200
	synctest.Test(t, func(t *testing.T) {
		for i, k := range keepers(t, n, func() { time.Sleep(time.Second) }) {
			assert.Equal(t, k.want, k.got, "call %d", i)
		}
	})
}

func TestAKeptContextKeepsItsOwnIdentityUnderRealConcurrency(t *testing.T) {
	const n = 500
	release := make(chan struct{})
	go func() {
		time.Sleep(10 * time.Millisecond)
		close(release)
	}()
	for i, k := range keepers(t, n, func() { <-release }) {
		assert.Equal(t, k.want, k.got, "call %d", i)
	}
}

func TestGoOfDistinctIdentitiesAllocatesAlmostNothing(t *testing.T) {
	// One worker, each call of another attempt: the call context comes
	// from the worker's block of 64, so a call allocates 1/64 of an
	// object on average; a context per call would make it 1.
	ex := pool.New(pool.Options{Workers: 1})
	defer shutdown(t, ex)
	done := make(chan struct{})
	h := executor.NewHandler("noop", func(context.Context, struct{}) (struct{}, error) {
		done <- struct{}{}
		return struct{}{}, nil
	}, nil)
	attempt := 0
	goOnce := func() {
		attempt++
		if err := ex.Go(context.Background(), executor.Call{Handler: h, RunID: "r", Attempt: attempt}); err != nil {
			panic(err)
		}
		<-done
	}
	for range 200 {
		goOnce() // warm up: the worker's goroutine, its first block
	}
	allocs := testing.AllocsPerRun(640, goOnce)
	assert.LessOrEqual(t, allocs, 0.1, "allocations per call")
}
