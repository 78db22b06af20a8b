package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/dashboard"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(runner{m}) }

// runner closes the shared browser after the tests, before goleak looks.
type runner struct{ m *testing.M }

func (r runner) Run() int {
	code := r.m.Run()
	if !closeBrowser() && code == 0 {
		code = 1
	}
	return code
}

// env is a dashboard over a real SQLite store, with the test flows.
type env struct {
	st    *sqlite.Store
	ex    *pool.Executor
	h     *dashboard.Handler
	srv   *httptest.Server
	flows flows
}

// flows are the test flows: etl succeeds after a retry, report fails in
// one mapped child (so publish never runs), slow times out, and gated
// runs a step at a time as the test opens its gates.
type flows struct {
	etl, report, slow, gated *flow.Flow
	gates                    *gates
	renders                  *counter // calls of report's render, by page
}

type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[k]++
	return c.n[k]
}

func (c *counter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// gates hold the gated flow's steps until the test opens them.
type gates struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func (g *gates) get(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.ch[name]
	if c == nil {
		c = make(chan struct{})
		g.ch[name] = c
	}
	return c
}

func (g *gates) open(name string) { close(g.get(name)) }

// tryOpen opens the gate unless it is open.
func (g *gates) tryOpen(name string) {
	c := g.get(name)
	select {
	case <-c:
	default:
		close(c)
	}
}

// brokenPage is the page report's render fails on while it is set.
var brokenPage = struct {
	sync.Mutex
	page string
}{page: "pricing"}

func newFlows(t testing.TB) flows {
	fl := flows{gates: &gates{ch: map[string]chan struct{}{}}, renders: &counter{n: map[string]int{}}}
	must := func(f *flow.Flow, err error) *flow.Flow {
		require.NoError(t, err)
		return f
	}
	{
		flaky := &counter{n: map[string]int{}}
		extract := task.New("extract", func(_ context.Context, _ struct{}) ([]string, error) {
			return []string{"orders", "refunds", "customers", "invoices", "shipments", "returns"}, nil
		}, task.Options{})
		transform := task.New("transform", func(_ context.Context, table string) (int, error) {
			time.Sleep(15 * time.Millisecond)
			if table == "customers" && flaky.add(table) == 1 {
				return 0, errors.New("connection reset by peer")
			}
			return len(table), nil
		}, task.Options{MaxRetries: 2, RetryDelay: 20 * time.Millisecond})
		load := task.New("load", func(_ context.Context, rows []int) (int, error) {
			time.Sleep(10 * time.Millisecond)
			n := 0
			for _, r := range rows {
				n += r
			}
			return n, nil
		}, task.Options{})
		b := flow.New("etl", flow.Options{})
		flow.Add(b, load, flow.Map(b, transform, flow.Add(b, extract, nil)))
		fl.etl = must(b.Build())
	}
	{
		fetch := task.New("fetch", func(_ context.Context, _ struct{}) ([]string, error) {
			time.Sleep(10 * time.Millisecond)
			return []string{"home", "pricing", "docs", "blog"}, nil
		}, task.Options{})
		render := task.New("render", func(_ context.Context, page string) (string, error) {
			fl.renders.add(page)
			time.Sleep(10 * time.Millisecond)
			brokenPage.Lock()
			broken := brokenPage.page
			brokenPage.Unlock()
			if page == broken {
				return "", fmt.Errorf("render %s: template %q: missing key \"price\"", page, page+".html")
			}
			return "<html>" + page + "</html>", nil
		}, task.Options{})
		publish := task.New("publish", func(_ context.Context, pages []string) (int, error) { return len(pages), nil }, task.Options{})
		archive := task.New("archive", func(_ context.Context, _ struct{}) (int, error) {
			time.Sleep(5 * time.Millisecond)
			return 1, nil
		}, task.Options{})
		b := flow.New("report", flow.Options{})
		pages := flow.Add(b, fetch, nil)
		flow.Add(b, publish, flow.Map(b, render, pages))
		flow.Add(b, archive, nil).After(pages)
		fl.report = must(b.Build())
	}
	{
		call := task.New("call-api", func(ctx context.Context, _ struct{}) (int, error) {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(5 * time.Second):
				return 1, nil
			}
		}, task.Options{Timeout: 60 * time.Millisecond, MaxRetries: 1})
		b := flow.New("slow", flow.Options{})
		flow.Add(b, call, nil)
		fl.slow = must(b.Build())
	}
	{
		step := func(name string) *task.Task[struct{}, struct{}] {
			return task.New(name, func(ctx context.Context, _ struct{}) (struct{}, error) {
				select {
				case <-ctx.Done():
					return struct{}{}, ctx.Err()
				case <-fl.gates.get(name):
					return struct{}{}, nil
				}
			}, task.Options{})
		}
		b := flow.New("gated", flow.Options{})
		one := flow.Add(b, step("one"), nil)
		two := flow.Add(b, step("two"), nil).After(one)
		flow.Add(b, step("three"), nil).After(two)
		fl.gated = must(b.Build())
	}
	return fl
}

func (fl flows) all() []*flow.Flow { return []*flow.Flow{fl.etl, fl.report, fl.slow, fl.gated} }

func newEnv(t testing.TB) *env {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "runs.db"), sqlite.Options{})
	require.NoError(t, err)
	e := &env{st: st, ex: pool.New(pool.Options{Workers: 4}), flows: newFlows(t)}
	e.h = dashboard.New(st, dashboard.Options{Flows: e.flows.all(), PollInterval: 50 * time.Millisecond})
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(func() {
		e.srv.CloseClientConnections()
		e.srv.Close()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, e.ex.Shutdown(sctx))
		require.NoError(t, st.Close())
	})
	return e
}

// run runs f to its end as run id, recorded in the store.
func (e *env) run(t testing.TB, f *flow.Flow, id string) *flow.Result {
	t.Helper()
	res, err := f.Run(context.Background(), e.ex, flow.RunOptions{Store: e.st, RunID: id})
	require.NotNil(t, res, "run %s: %v", id, err)
	return res
}

// newHandlerWith serves e's store with a dashboard given flows, and
// returns its URL.
func newHandlerWith(t testing.TB, e *env, flows ...*flow.Flow) string {
	srv := httptest.NewServer(dashboard.New(e.st, dashboard.Options{Flows: flows}))
	t.Cleanup(srv.Close)
	return srv.URL
}
