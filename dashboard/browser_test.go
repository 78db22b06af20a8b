package dashboard_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/internal/headless"
	"github.com/flowline-go/flowline/store"
)

var screenshots = flag.String("screenshots", "", "write the browser tests' screenshots into this directory (docs/img: go test ./dashboard -run Browser -screenshots ../docs/img)")

// shared is the browser of the package's tests, started by the first
// that needs one and closed by TestMain (one start instead of one per
// test).
var shared struct {
	once sync.Once
	b    *headless.Browser
	err  error
}

// closeBrowser ends the shared browser, if one was started, and reports
// whether it left nothing behind.
func closeBrowser() bool {
	if shared.b == nil {
		return true
	}
	if err := shared.b.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard tests:", err)
		return false
	}
	return true
}

// browse opens a page of the shared browser for the test, closed when it
// ends, and fails the test if the page had a JavaScript error or a
// refused resource.
func browse(t *testing.T, width, height int) (*headless.Page, context.Context) {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shared.b, shared.err = headless.Start(ctx, headless.Options{})
	})
	if shared.err != nil {
		headless.SkipOrFail(t, shared.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	p, err := shared.b.NewPage(ctx)
	require.NoError(t, err)
	require.NoError(t, p.SetViewport(ctx, width, height))
	t.Cleanup(func() {
		assert.Empty(t, noise(p.Problems()), "the page had JavaScript or resource errors")
		assert.NoError(t, p.Close(context.Background()))
	})
	return p, ctx
}

// noise drops what a test provoked on purpose: the 4xx answers whose
// pages it checks.
func noise(problems []string) []string {
	var out []string
	for _, p := range problems {
		if strings.Contains(p, "status of 40") {
			continue
		}
		out = append(out, p)
	}
	return out
}

// shoot takes a screenshot of the page: into -screenshots as
// dashboard-<name>.png when given, else into a temporary directory (so
// that the capture is tested either way).
func shoot(t *testing.T, ctx context.Context, p *headless.Page, name string) {
	t.Helper()
	img, err := p.Screenshot(ctx)
	require.NoError(t, err)
	_, err = png.Decode(bytes.NewReader(img))
	require.NoError(t, err, "a PNG")
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dashboard-"+name+".png"), img, 0o644))
}

func evalString(t *testing.T, ctx context.Context, p *headless.Page, expr string) string {
	t.Helper()
	var s string
	require.NoError(t, p.Eval(ctx, expr, &s), expr)
	return s
}

func evalInt(t *testing.T, ctx context.Context, p *headless.Page, expr string) int {
	t.Helper()
	var n int
	require.NoError(t, p.Eval(ctx, expr, &n), expr)
	return n
}

// TestBrowserListAndRunPage: the list shows every run with its state, and
// a failed run's page shows its graph coloured by state, its timeline and
// its task table, the failing task's error included.
func TestBrowserListAndRunPage(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.etl, "etl-0001")
	e.run(t, e.flows.report, "report-0001")
	e.run(t, e.flows.slow, "slow-0001")
	// And one still going.
	done := make(chan error, 1)
	go func() {
		_, err := e.flows.gated.Run(context.Background(), e.ex, flow.RunOptions{Store: e.st, RunID: "gated-0001"})
		done <- err
	}()
	t.Cleanup(func() {
		for _, g := range []string{"one", "two", "three"} {
			e.flows.gates.tryOpen(g)
		}
		assert.NoError(t, <-done)
	})
	p, ctx := browse(t, 1280, 900)

	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/"))
	require.NoError(t, p.WaitFor(ctx, `document.querySelectorAll('table.runs tbody tr').length === 4`))
	assert.Equal(t, "Success", evalString(t, ctx, p, `document.querySelector('tr[data-run="etl-0001"]').dataset.state`))
	assert.Equal(t, "Failed", evalString(t, ctx, p, `document.querySelector('tr[data-run="report-0001"]').dataset.state`))
	assert.Equal(t, "Failed", evalString(t, ctx, p, `document.querySelector('tr[data-run="slow-0001"]').dataset.state`), "a flow whose task timed out failed")
	assert.Equal(t, "gated-0001,slow-0001,report-0001,etl-0001", evalString(t, ctx, p, `Array.from(document.querySelectorAll('table.runs tbody tr')).map(r => r.dataset.run).join()`), "newest first")
	assert.Equal(t, "Running", evalString(t, ctx, p, `document.querySelector('tr[data-run="gated-0001"]').dataset.state`))
	shoot(t, ctx, p, "runs")

	// The filter: failed runs only.
	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/?state=Failed"))
	assert.Equal(t, "slow-0001,report-0001", evalString(t, ctx, p, `Array.from(document.querySelectorAll('table.runs tbody tr')).map(r => r.dataset.run).join()`))

	// Follow the link to the failed run.
	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/?flow=report"))
	require.NoError(t, p.Eval(ctx, `document.querySelector('tr[data-run="report-0001"] a').click()`, nil))
	require.NoError(t, p.WaitFor(ctx, `location.pathname === '/runs/report-0001' && document.readyState === 'complete'`))

	states := evalString(t, ctx, p, `Array.from(document.querySelectorAll('svg.graph a.node')).map(a => a.dataset.task + '=' + a.getAttribute('class').replace('node state-', '')).join(' ')`)
	assert.Equal(t, "archive=Success fetch=Success publish=TriggerFailed render=Failed", sortedWords(states))
	assert.Equal(t, "#f28b82", evalString(t, ctx, p, `document.querySelector('svg.graph a.node[data-task="render"] rect.box').getAttribute('fill')`), "flow.StateColor(Failed)")
	assert.Positive(t, evalInt(t, ctx, p, `document.querySelectorAll('#timeline svg g.attempt').length`), "the timeline has the attempts")
	assert.Contains(t, evalString(t, ctx, p, `document.querySelector('tr[data-task="render[1]"]').textContent`), `missing key "price"`)
	assert.Equal(t, "Failed", evalString(t, ctx, p, `document.querySelector('tr[data-task="render[1]"]').dataset.state`))
	assert.Contains(t, evalString(t, ctx, p, `document.querySelector('#run-head').textContent`), "render pricing")
	shoot(t, ctx, p, "run-failed")

	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/runs/etl-0001"))
	assert.Contains(t, evalString(t, ctx, p, `document.querySelector('tr[data-task="transform[2]"] td.attempts').textContent`), "#2", "the retried child shows both attempts")
	shoot(t, ctx, p, "run-success")

	// An unknown run is a 404 page, not a blank one.
	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/runs/no-such-run"))
	assert.Equal(t, "Not found", evalString(t, ctx, p, `document.querySelector('h1').textContent`))
}

func sortedWords(s string) string {
	w := strings.Fields(s)
	// keep the graph's order stable for the comparison: by name
	for i := range w {
		for j := i + 1; j < len(w); j++ {
			if w[j] < w[i] {
				w[i], w[j] = w[j], w[i]
			}
		}
	}
	return strings.Join(w, " ")
}

// TestBrowserLiveUpdates: while a run goes on, the list and the run page
// change without a reload (Server-Sent Events).
func TestBrowserLiveUpdates(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.etl, "etl-0001")
	p, ctx := browse(t, 1280, 900)
	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/"))
	require.NoError(t, p.Eval(ctx, `window.notReloaded = 42`, nil))

	done := make(chan error, 1)
	go func() {
		_, err := e.flows.gated.Run(context.Background(), e.ex, flow.RunOptions{Store: e.st, RunID: "gated-0001"})
		done <- err
	}()
	t.Cleanup(func() {
		for _, g := range []string{"one", "two", "three"} {
			e.flows.gates.tryOpen(g)
		}
		<-done
	})
	// The new run appears in the open list, running.
	require.NoError(t, p.WaitFor(ctx, `document.querySelector('tr[data-run="gated-0001"][data-state="Running"]')`))

	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/runs/gated-0001"))
	require.NoError(t, p.Eval(ctx, `window.notReloaded = 42`, nil))
	node := func(name string) string {
		return `document.querySelector('svg.graph a.node[data-task="` + name + `"]').getAttribute('class')`
	}
	require.NoError(t, p.WaitFor(ctx, node("one")+` === 'node state-Running'`))
	assert.Equal(t, "node state-Pending", evalString(t, ctx, p, node("two")))

	e.flows.gates.open("one")
	require.NoError(t, p.WaitFor(ctx, node("one")+` === 'node state-Success' && `+node("two")+` === 'node state-Running'`))
	require.NoError(t, p.WaitFor(ctx, `document.querySelector('tr[data-task="one"]').dataset.state === 'Success'`), "the table too")
	assert.Equal(t, 42, evalInt(t, ctx, p, `window.notReloaded`), "updated in place, not reloaded")
	shoot(t, ctx, p, "run-live")

	e.flows.gates.open("two")
	e.flows.gates.open("three")
	require.NoError(t, <-done)
	done <- nil // for the cleanup
	require.NoError(t, p.WaitFor(ctx, `document.querySelector('#run-head').dataset.runState === 'Success'`))
	assert.Equal(t, 42, evalInt(t, ctx, p, `window.notReloaded`))
	assert.Equal(t, 0, evalInt(t, ctx, p, `document.querySelectorAll('#cancel').length`), "no cancel button on an ended run")
}

// TestBrowserCrossSitePostIsRefused: a page of another site that posts a
// form to the dashboard (even with the right token) is refused, and
// nothing changes; the dashboard's own form works.
func TestBrowserCrossSitePostIsRefused(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.etl, "etl-0001")
	key := "transform/v1/abc"
	require.NoError(t, e.st.Apply(context.Background(), &store.Batch{RunID: "etl-0001",
		Cache: []store.CacheEntry{{Key: key, Value: []byte("7"), Created: time.Now()}}}))

	// The other site: localhost instead of 127.0.0.1 is another site to
	// the browser.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/cache/invalidate">
<input name="token" value="%s"><input name="prefix" value="transform/"></form>
<script>document.getElementById('f').submit()</script>`, e.srv.URL, e.h.Token())
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	p, ctx := browse(t, 1100, 700)
	require.NoError(t, p.Navigate(ctx, evilURL+"/"))
	require.NoError(t, p.WaitFor(ctx, `location.href.startsWith('`+e.srv.URL+`') && document.readyState === 'complete'`))
	assert.Equal(t, "Refused: a cross-site request", evalString(t, ctx, p, `document.querySelector('h1').textContent`))
	es, err := e.st.CacheEntries(ctx, "")
	require.NoError(t, err)
	assert.Len(t, es, 1, "nothing was invalidated")

	// The dashboard's own button works.
	require.NoError(t, p.Navigate(ctx, e.srv.URL+"/cache"))
	require.NoError(t, p.Eval(ctx, `document.querySelector('table.cache button').click()`, nil))
	require.NoError(t, p.WaitFor(ctx, `document.querySelector('.flash') && document.readyState === 'complete'`))
	assert.Contains(t, evalString(t, ctx, p, `document.querySelector('.flash').textContent`), "Invalidated 1 cache entries")
	es, err = e.st.CacheEntries(ctx, "")
	require.NoError(t, err)
	assert.Empty(t, es)
}
