package callstats_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/internal/callstats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEndedCountsByClass(t *testing.T) {
	var c callstats.Counters
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			c.Submitted.Add(5)
			c.Ended(nil)
			c.Ended(errors.New("disk full"))
			c.Ended(fmt.Errorf("wrapped: %w", &executor.TimeoutError{}))
			c.Ended(executor.NewCanceledError("t", ctx))
			c.Ended(&executor.PanicError{})
			c.EndedTimedOut()
			c.EndedCanceled()
		})
	}
	wg.Wait()
	c.Running.Add(2)
	c.Abandoned.Add(1)
	assert.Equal(t, executor.Stats{Submitted: 50, Running: 2, Succeeded: 10, Failed: 20, TimedOut: 20, Canceled: 20, Abandoned: 1}, c.Snapshot())
}
