package deadlinectx_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/internal/deadlinectx"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExpireReportsDeadlineAndCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c := deadlinectx.New(context.Background(), start.Add(time.Second))
		d, ok := c.Deadline()
		require.True(t, ok)
		assert.Equal(t, start.Add(time.Second), d)
		assert.NoError(t, c.Err())
		child, cancel := context.WithCancel(c)
		defer cancel()

		te := &executor.TimeoutError{Task: "t", Limit: time.Second}
		c.Expire(te)
		<-c.Done()
		<-child.Done()
		assert.Equal(t, context.DeadlineExceeded, c.Err())
		assert.Same(t, te, context.Cause(c))
		assert.Same(t, te, context.Cause(child), "derived contexts see the cause")
		d, _ = child.Deadline()
		assert.Equal(t, start.Add(time.Second), d, "derived contexts see the deadline")

		c.Release() // after expiry: nothing changes
		assert.Equal(t, context.DeadlineExceeded, c.Err())
	})
}

func TestReleaseIsCancelNotDeadline(t *testing.T) {
	c := deadlinectx.New(context.Background(), time.Now().Add(time.Hour))
	c.Release()
	<-c.Done()
	assert.Equal(t, context.Canceled, c.Err())
	c.Expire(&executor.TimeoutError{}) // after release: nothing changes
	assert.Equal(t, context.Canceled, c.Err())
}

func TestParentCancelAndParentDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := deadlinectx.New(parent, time.Now().Add(time.Hour))
		cancel()
		<-c.Done()
		assert.Equal(t, context.Canceled, c.Err())

		early, cancel2 := context.WithTimeout(context.Background(), time.Minute)
		defer cancel2()
		c2 := deadlinectx.New(early, time.Now().Add(time.Hour))
		d, _ := c2.Deadline()
		pd, _ := early.Deadline()
		assert.Equal(t, pd, d, "the earlier parent deadline is reported")
		<-c2.Done()
		assert.True(t, errors.Is(c2.Err(), context.DeadlineExceeded))
		c2.Release()
	})
}

func TestLateIsDecidedAtTheDeadline(t *testing.T) {
	start := time.Now()
	limit := 10 * time.Millisecond
	assert.Nil(t, deadlinectx.Late("t", limit, start, start.Add(limit-1), executor.Soft), "observed before the deadline: on time")
	te := deadlinectx.Late("t", limit, start, start.Add(limit), executor.Soft)
	require.NotNil(t, te, "observed at the deadline: late")
	assert.Equal(t, &executor.TimeoutError{Task: "t", Limit: limit, Elapsed: limit, Enforcement: executor.Soft, Stopped: true}, te)
	assert.NotNil(t, deadlinectx.Late("t", limit, start, start.Add(time.Hour), executor.Hard))
	assert.Nil(t, deadlinectx.Late("t", 0, start, start.Add(time.Hour), executor.Soft), "no limit is never late")
	assert.Nil(t, deadlinectx.Late("t", -time.Second, start, start.Add(time.Hour), executor.Soft))
}

func TestCallerEndedTurnsTheCallersDeadlineIntoACancellation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := deadlinectx.CallerEnded("t", ctx, fmt.Errorf("gave up: %w", ctx.Err()))
	var ce *executor.CanceledError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, executor.ClassCanceled, executor.ClassOf(err))

	own := errors.New("disk full")
	assert.Same(t, own, deadlinectx.CallerEnded("t", ctx, own), "another error is the task's own")
	assert.NoError(t, deadlinectx.CallerEnded("t", ctx, nil))
	live := context.Background()
	dl := fmt.Errorf("x: %w", context.DeadlineExceeded)
	assert.Same(t, dl, deadlinectx.CallerEnded("t", live, dl), "a live caller: the task's own deadline")
	te := &executor.TimeoutError{Task: "t"}
	assert.Same(t, error(te), deadlinectx.CallerEnded("t", ctx, te))
}

func TestLazyExpireReportsDeadlineAndCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c := deadlinectx.NewLazy(context.Background(), start.Add(time.Second))
		d, ok := c.Deadline()
		require.True(t, ok)
		assert.Equal(t, start.Add(time.Second), d)
		assert.NoError(t, c.Err())
		child, cancel := context.WithCancel(c)
		defer cancel()

		te := &executor.TimeoutError{Task: "t", Limit: time.Second}
		c.Expire(te)
		<-c.Done()
		<-child.Done()
		assert.Equal(t, context.DeadlineExceeded, c.Err())
		assert.Same(t, te, context.Cause(c))
		assert.Same(t, te, context.Cause(child), "derived contexts see the cause")
		d, _ = child.Deadline()
		assert.Equal(t, start.Add(time.Second), d, "derived contexts see the deadline")

		c.Release() // after expiry: nothing changes
		assert.Equal(t, context.DeadlineExceeded, c.Err())
	})
}

func TestLazyEndedBeforeAnyoneLooked(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	c := deadlinectx.NewLazy(parent, time.Now().Add(time.Hour))
	assert.Equal(t, "v", c.Value(key{}), "values come from the parent")
	te := &executor.TimeoutError{Task: "t"}
	c.Expire(te) // nobody asked for Done: the machinery is made on demand
	assert.Equal(t, context.DeadlineExceeded, c.Err())
	assert.Same(t, te, context.Cause(c))
	assert.Equal(t, "v", c.Value(key{}))
	select {
	case <-c.Done():
	default:
		t.Error("Done is not closed after Expire")
	}
	c.Release()
	assert.Same(t, te, context.Cause(c), "the first end counts")
}

func TestLazyReleaseIsCancelNotDeadline(t *testing.T) {
	c := deadlinectx.NewLazy(context.Background(), time.Now().Add(time.Hour))
	done := c.Done()
	c.Release()
	<-done
	assert.Equal(t, context.Canceled, c.Err())
	assert.Equal(t, context.Canceled, context.Cause(c))
	c.Expire(&executor.TimeoutError{}) // after release: nothing changes
	assert.Equal(t, context.Canceled, c.Err())
}

func TestLazyParentCancelAndParentDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancelCause(context.Background())
		c := deadlinectx.NewLazy(parent, time.Now().Add(time.Hour))
		why := errors.New("caller gave up")
		cancel(why)
		assert.Equal(t, context.Canceled, c.Err(), "before Done was asked for")
		<-c.Done()
		assert.Equal(t, context.Canceled, c.Err())
		assert.Same(t, why, context.Cause(c))

		early, cancel2 := context.WithTimeout(context.Background(), time.Minute)
		defer cancel2()
		c2 := deadlinectx.NewLazy(early, time.Now().Add(time.Hour))
		d, _ := c2.Deadline()
		pd, _ := early.Deadline()
		assert.Equal(t, pd, d, "the earlier parent deadline is reported")
		<-c2.Done()
		assert.True(t, errors.Is(c2.Err(), context.DeadlineExceeded))
		c2.Release()
	})
}

func TestLazyConcurrentDoneAndExpire(t *testing.T) {
	for range 200 {
		c := deadlinectx.NewLazy(context.Background(), time.Now().Add(time.Hour))
		te := &executor.TimeoutError{Task: "t"}
		go c.Expire(te)
		<-c.Done() // made concurrently with the end: one of the two cancels
		assert.Same(t, te, context.Cause(c))
	}
}
