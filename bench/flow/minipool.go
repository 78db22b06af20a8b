package main

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/flowline-go/flowline/executor"
)

// minipool is a minimal fixed-worker executor written for this benchmark
// only, standing in for executor/pool until that lands: N goroutines read
// calls from a buffered channel, run them and complete their futures. It
// enforces no limits (it refuses calls that have one) and does not cancel
// running calls; it is the cheapest concurrent executor that keeps the
// executor contract's shape (a Future completed on a worker goroutine).
type minipool struct {
	jobs chan minijob
	wg   sync.WaitGroup
}

type minijob struct {
	ctx     context.Context
	call    executor.Call
	promise executor.Promise
}

var _ executor.TimeoutHandler = (*minipool)(nil)

func newMinipool(workers, queue int) *minipool {
	p := &minipool{jobs: make(chan minijob, queue)}
	for w := range workers {
		p.wg.Add(1)
		go p.work("minipool-" + strconv.Itoa(w))
	}
	return p
}

func (p *minipool) Enforcement() executor.Enforcement { return executor.Soft }

func (p *minipool) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	if call.Handler == nil {
		return nil, errors.New("minipool: nil handler")
	}
	if call.Limit > 0 {
		return nil, errors.New("minipool: limits are not supported")
	}
	pr := executor.NewPromise()
	select {
	case p.jobs <- minijob{ctx: ctx, call: call, promise: pr}:
		return pr.Future(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *minipool) work(name string) {
	defer p.wg.Done()
	for j := range p.jobs {
		v, err := j.call.Handler.Run(executor.WithCall(j.ctx, &j.call), j.call.Input)
		j.promise.SetWorker(name)
		j.promise.Complete(v, err)
	}
}

func (p *minipool) close() {
	close(p.jobs)
	p.wg.Wait()
}
