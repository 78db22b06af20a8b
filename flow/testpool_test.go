package flow_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
)

// testPool is a small concurrent executor for these tests, standing in for
// executor/pool: a fixed number of worker goroutines reading a bounded
// queue. Submit blocks while the queue is full (until ctx ends), futures
// complete on worker goroutines, and a cancelled context completes a
// call's future at once (soft: a task that ignores it runs on). Limits
// are enforced with context.WithTimeoutCause, softly.
type testPool struct {
	jobs   chan poolJob
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool

	submitted atomic.Int64
	running   atomic.Int64
	peak      atomic.Int64
}

type poolJob struct {
	ctx     context.Context
	call    executor.Call
	promise executor.Promise
	stop    func() bool
}

var _ executor.Executor = (*testPool)(nil)

func newTestPool(t *testing.T, workers, queue int) *testPool {
	p := &testPool{jobs: make(chan poolJob, queue)}
	for w := range workers {
		p.wg.Add(1)
		go p.work(strconv.Itoa(w))
	}
	t.Cleanup(func() { assert.NoError(t, p.Shutdown(context.Background())) })
	return p
}

func (p *testPool) Enforcement() executor.Enforcement { return executor.Soft }

func (p *testPool) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	if call.Handler == nil {
		return nil, errors.New("testpool: nil handler")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, executor.ErrClosed
	}
	pr := executor.NewPromise()
	stop := context.AfterFunc(ctx, func() { pr.Complete(nil, executor.NewCanceledError(call.Name(), ctx)) })
	select {
	case p.jobs <- poolJob{ctx: ctx, call: call, promise: pr, stop: stop}:
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
	p.submitted.Add(1)
	return pr.Future(), nil
}

func (p *testPool) work(name string) {
	defer p.wg.Done()
	for j := range p.jobs {
		n := p.running.Add(1)
		for {
			old := p.peak.Load()
			if n <= old || p.peak.CompareAndSwap(old, n) {
				break
			}
		}
		ctx := executor.WithCall(j.ctx, &j.call)
		var cancel context.CancelFunc = func() {}
		if j.call.Limit > 0 {
			ctx, cancel = context.WithTimeoutCause(ctx, j.call.Limit, &executor.TimeoutError{
				Task: j.call.Name(), Limit: j.call.Limit, Enforcement: executor.Soft})
		}
		v, err := j.call.Handler.Run(ctx, j.call.Input)
		if err != nil && j.call.Limit > 0 && errors.Is(context.Cause(ctx), executor.ErrTimeout) && j.ctx.Err() == nil {
			err = context.Cause(ctx)
		}
		cancel()
		p.running.Add(-1)
		j.stop()
		j.promise.Complete(v, err)
	}
}

func (p *testPool) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.jobs)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *testPool) Stats() executor.Stats {
	return executor.Stats{Submitted: uint64(p.submitted.Load()), Running: p.running.Load()}
}

// slowly is how long the tests' "slow" tasks take, in synctest time.
const slowly = time.Hour

func newPool(t *testing.T, workers int) *pool.Executor {
	ex := pool.New(pool.Options{Workers: workers})
	t.Cleanup(func() { assert.NoError(t, ex.Shutdown(context.Background())) })
	return ex
}

func newLocal(t *testing.T) *local.Executor {
	ex := local.New(local.Options{})
	t.Cleanup(func() { assert.NoError(t, ex.Shutdown(context.Background())) })
	return ex
}
