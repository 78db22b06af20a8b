package dashboard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/dashboard"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
)

// TestPostgresStore: the dashboard over a real Postgres store, the
// other store a service may share between processes: the list with its
// filter, a failed run's page, and a retry performed by flow.Serve.
func TestPostgresStore(t *testing.T) {
	dsn := pgtest.Schema(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn, postgres.Options{})
	require.NoError(t, err)
	defer st.Close()
	ex := pool.New(pool.Options{Workers: 4})
	defer ex.Shutdown(ctx)
	fl := newFlows(t)
	for id, f := range map[string]*flow.Flow{"etl-0001": fl.etl, "report-0001": fl.report} {
		_, _ = f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: id})
	}
	h := dashboard.New(st, dashboard.Options{Flows: fl.all()})
	srv := httptest.NewServer(h)
	defer srv.Close()

	status, body := get(t, srv.URL+"/?state=Failed")
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, `data-run="report-0001" data-state="Failed"`)
	assert.NotContains(t, body, `data-run="etl-0001"`)
	status, body = get(t, srv.URL+"/runs/report-0001")
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, `class="node state-Failed" data-task="render"`)
	assert.Contains(t, body, `missing key &#34;price&#34;`)

	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- flow.Serve(sctx, ex, fl.all(), flow.ServeOptions{RunOptions: flow.RunOptions{Store: st}, PollInterval: 20 * time.Millisecond})
	}()
	defer func() { stop(); <-served }()
	brokenPage.Lock()
	brokenPage.page = ""
	brokenPage.Unlock()
	defer func() {
		brokenPage.Lock()
		brokenPage.page = "pricing"
		brokenPage.Unlock()
	}()
	status, _, _ = post(t, srv.URL+"/runs/report-0001/retry", url.Values{"token": {h.Token()}}, nil)
	require.Equal(t, http.StatusSeeOther, status)
	require.Eventually(t, func() bool {
		run, err := st.Run(ctx, "report-0001")
		return err == nil && run.State == "Success"
	}, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, 2, fl.renders.get("pricing"))
	assert.Equal(t, 1, fl.renders.get("home"))
}
