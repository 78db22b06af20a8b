package dashboard_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// TestBrowserCancel: the Cancel button of a running run's page cancels
// it: its driver sees the request and stops it, and the page shows the
// run Cancelled without a reload.
func TestBrowserCancel(t *testing.T) {
	e := newEnv(t)
	type ended struct {
		res *flow.Result
		err error
	}
	done := make(chan ended, 1)
	go func() {
		res, err := e.flows.gated.Run(context.Background(), e.ex, flow.RunOptions{Store: e.st, RunID: "gated-0001", CancelPoll: 20 * time.Millisecond})
		done <- ended{res, err}
	}()
	t.Cleanup(func() { e.flows.gates.tryOpen("one") })

	p, ctx := browse(t, 1280, 900)
	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/runs/gated-0001"))
	require.NoError(t, p.WaitFor(ctx, `document.querySelector('svg.graph a.node[data-task="one"]').getAttribute('class') === 'node state-Running'`))
	require.NoError(t, p.Eval(ctx, `document.getElementById('cancel').click()`, nil))
	require.NoError(t, p.WaitFor(ctx, `document.querySelector('.flash') !== null && document.readyState === 'complete'`))
	assert.Contains(t, evalString(t, ctx, p, `document.querySelector('.flash').textContent`), "Cancel requested")
	require.NoError(t, p.Eval(ctx, `window.notReloaded = 42`, nil))

	var end ended
	select {
	case end = <-done:
	case <-ctx.Done():
		t.Fatal("the run was not cancelled")
	}
	assert.ErrorIs(t, end.err, flow.ErrCancelRequested)
	require.NotNil(t, end.res)
	assert.Equal(t, task.Cancelled, end.res.State)
	require.NoError(t, p.WaitFor(ctx, `document.querySelector('#run-head').dataset.runState === 'Cancelled'`))
	assert.Equal(t, "Cancelled", evalString(t, ctx, p, `document.querySelector('tr[data-task="one"]').dataset.state`))
	assert.Equal(t, 42, evalInt(t, ctx, p, `window.notReloaded`), "seen live")
	assert.Equal(t, 1, evalInt(t, ctx, p, `document.querySelectorAll('#retry').length`), "a cancelled run can be retried")
}

// TestBrowserRetry: the Retry button of a failed run's page has the
// flow.Serve running in the service restart it from its failures: only
// the failed render (and publish, which never ran) run again; fetch,
// archive and the pages that rendered keep their results.
func TestBrowserRetry(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.report, "report-0001")
	require.Equal(t, 1, e.flows.renders.get("pricing"))

	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- flow.Serve(sctx, e.ex, e.flows.all(), flow.ServeOptions{RunOptions: flow.RunOptions{Store: e.st}, PollInterval: 20 * time.Millisecond})
	}()
	t.Cleanup(func() {
		stop()
		err := <-served
		assert.True(t, err == nil || errors.Is(err, context.Canceled), "%v", err)
	})
	brokenPage.Lock()
	brokenPage.page = "" // the template is fixed
	brokenPage.Unlock()
	t.Cleanup(func() {
		brokenPage.Lock()
		brokenPage.page = "pricing"
		brokenPage.Unlock()
	})

	p, ctx := browse(t, 1280, 900)
	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/runs/report-0001"))
	require.NoError(t, p.Eval(ctx, `document.getElementById('retry').click()`, nil))
	require.NoError(t, p.WaitFor(ctx, `document.querySelector('.flash') !== null && document.readyState === 'complete'`))
	require.NoError(t, p.Eval(ctx, `window.notReloaded = 42`, nil))
	require.NoError(t, p.WaitFor(ctx, `document.querySelector('#run-head').dataset.runState === 'Success'`))
	assert.Equal(t, 42, evalInt(t, ctx, p, `window.notReloaded`), "seen live")

	assert.Equal(t, 2, e.flows.renders.get("pricing"), "the failed page rendered again")
	for _, page := range []string{"home", "docs", "blog"} {
		assert.Equal(t, 1, e.flows.renders.get(page), "%s kept its result", page)
	}
	chips := func(label string) string {
		return evalString(t, ctx, p, `Array.from(document.querySelectorAll('tr[data-task="`+label+`"] td.attempts .chip')).map(c => c.textContent.split(' ')[0]).join()`)
	}
	assert.Equal(t, "#1,#2", chips("render[1]"), "attempt numbers go on")
	assert.Equal(t, "#1", chips("fetch"), "fetch did not run again")
	assert.Equal(t, "#1", chips("archive"))
	assert.Equal(t, "#1", chips("publish"), "publish ran for the first time")
	assert.Equal(t, "Success", evalString(t, ctx, p, `document.querySelector('tr[data-task="publish"]').dataset.state`))
	shoot(t, ctx, p, "run-retried")
}
