package flow

import (
	"context"
	"fmt"
	"time"
)

// ErrCancelRequested is the cause of a durable run's cancellation when its
// driver found a cancel request in the store (store.Store.RequestCancel).
// The run ends Cancelled and its Result.Err matches it, and
// context.Canceled, with errors.Is.
var ErrCancelRequested = fmt.Errorf("flow: cancel requested in the run's store: %w", context.Canceled)

func (o *RunOptions) cancelPoll() time.Duration {
	switch {
	case o.CancelPoll < 0:
		return 0
	case o.CancelPoll == 0:
		return time.Second
	}
	return o.CancelPoll
}

// startWatch starts the goroutine that looks for a cancel request every
// d.poll; stopAll stops it, cutting off a read in progress.
func (d *durable) startWatch(ctx context.Context) {
	if d.poll <= 0 && !d.cancelNow {
		return
	}
	ctx, d.unwatch = context.WithCancel(ctx)
	d.wg.Go(func() { d.watch(ctx) })
}

// watch cancels the run when a cancel request is pending: at once for a
// request read with the run, else at the first poll that sees one. A poll
// that fails is tried again at the next tick: the recorder and the
// heartbeat are what report a store that is down.
func (d *durable) watch(ctx context.Context) {
	if d.cancelNow {
		d.cancel(ErrCancelRequested)
		return
	}
	t := time.NewTicker(d.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rec, err := d.st.Run(ctx, d.runID)
		if err == nil && !rec.CancelRequested.IsZero() {
			d.cancel(ErrCancelRequested)
			return
		}
	}
}
