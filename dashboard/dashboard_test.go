package dashboard_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/dashboard"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
)

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// post sends a form without following the redirect, with extra headers.
func post(t *testing.T, u string, form url.Values, headers map[string]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func TestBadInputGetsAPageThatSaysWhy(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.etl, "etl-0001")
	for _, tc := range []struct {
		name, path string
		status     int
		want       string
	}{
		{"unknown run", "/runs/nope", 404, "Run “nope” does not exist"},
		{"unknown run's picture", "/runs/nope/graph.svg", 404, "does not exist"},
		{"unknown page", "/no/such/page", 404, "There is no page at /no/such/page"},
		{"unknown state", "/?state=Done", 400, `state &#34;Done&#34; is not a run state`},
		{"bad since", "/?since=yesterday", 400, `since: &#34;yesterday&#34; is not a time`},
		{"until before since", "/?since=2026-12-02&until=2026-12-01", 400, "must be after since"},
		{"bad limit", "/?limit=0", 400, "limit &#34;0&#34; is not a number from 1 to 10000"},
		{"unknown asset", "/assets/nope.css", 404, "There is no page"},
		{"bad filter's stream", "/events?limit=x", 400, "bad filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(t, e.srv.URL+tc.path)
			assert.Equal(t, tc.status, status)
			assert.Contains(t, body, tc.want)
		})
	}
	status, _ := get(t, e.srv.URL+"/runs/etl-0001")
	assert.Equal(t, 200, status)
}

func TestFilters(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.etl, "etl-0001")
	e.run(t, e.flows.report, "report-0001")
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	e.run(t, e.flows.etl, "etl-0002")
	rows := func(q string) []string {
		status, body := get(t, e.srv.URL+"/?"+q)
		require.Equal(t, 200, status, body)
		var ids []string
		for _, part := range strings.Split(body, `data-run="`)[1:] {
			ids = append(ids, part[:strings.IndexByte(part, '"')])
		}
		return ids
	}
	assert.Equal(t, []string{"etl-0002", "report-0001", "etl-0001"}, rows(""), "newest first")
	assert.Equal(t, []string{"etl-0002", "etl-0001"}, rows("flow=etl"))
	assert.Equal(t, []string{"report-0001"}, rows("state=Failed"))
	assert.Equal(t, []string{"etl-0002", "report-0001"}, rows("state=Failed,Success&limit=2"))
	assert.Equal(t, []string{"etl-0002"}, rows("since="+url.QueryEscape(mid.Format(time.RFC3339Nano))))
	assert.Equal(t, []string{"report-0001", "etl-0001"}, rows("until="+url.QueryEscape(mid.Format(time.RFC3339Nano))))
	assert.Equal(t, []string{"etl-0002", "report-0001", "etl-0001"}, rows("since=1h"))
	assert.Empty(t, rows("since=2d&until=1d"))
	_, body := get(t, e.srv.URL+"/?flow=none")
	assert.Contains(t, body, "No runs match this filter.")
}

func TestPostsNeedSameOriginAndToken(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.etl, "etl-0001")
	ctx := context.Background()
	seed := func() {
		require.NoError(t, e.st.Apply(ctx, &store.Batch{RunID: "etl-0001",
			Cache: []store.CacheEntry{{Key: "k/1", Value: []byte("1"), Created: time.Now()}}}))
	}
	left := func() int {
		es, err := e.st.CacheEntries(ctx, "")
		require.NoError(t, err)
		return len(es)
	}
	seed()
	u := e.srv.URL + "/cache/invalidate"
	good := url.Values{"token": {e.h.Token()}, "prefix": {"k/"}}
	for _, tc := range []struct {
		name    string
		form    url.Values
		headers map[string]string
		want    string
	}{
		{"cross-site fetch", good, map[string]string{"Sec-Fetch-Site": "cross-site"}, "cross-site request"},
		{"same-site but another origin", good, map[string]string{"Sec-Fetch-Site": "same-site"}, "cross-site request"},
		{"another origin, old browser", good, map[string]string{"Origin": "http://evil.example"}, "cross-site request"},
		{"no token", url.Values{"prefix": {"k/"}}, nil, "token is missing or wrong"},
		{"wrong token", url.Values{"token": {"0123"}, "prefix": {"k/"}}, map[string]string{"Sec-Fetch-Site": "same-origin"}, "token is missing or wrong"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := post(t, u, tc.form, tc.headers)
			assert.Equal(t, http.StatusForbidden, status)
			assert.Contains(t, body, tc.want)
			assert.Equal(t, 1, left(), "nothing changed")
		})
	}
	status, _, body := post(t, u, url.Values{"token": {e.h.Token()}}, nil)
	assert.Equal(t, http.StatusBadRequest, status, "an empty prefix needs all=1")
	assert.Contains(t, body, "Give a cache key prefix")

	status, loc, _ := post(t, u, good, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.srv.URL})
	assert.Equal(t, http.StatusSeeOther, status)
	assert.Equal(t, "/cache?done=invalidate&n=1", loc)
	assert.Equal(t, 0, left())

	seed()
	status, loc, _ = post(t, u, url.Values{"token": {e.h.Token()}, "all": {"1"}, "run": {"etl-0001"}}, nil)
	assert.Equal(t, http.StatusSeeOther, status, "a client without browser headers (curl with the token)")
	assert.Equal(t, "/runs/etl-0001?done=invalidate&n=1", loc)
	assert.Equal(t, 0, left())

	resp, err := http.Get(u)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "actions are POSTs only")
}

// TestEventStream reads the stream as a browser would: the live part at
// once, again when the run changes, and "gone" for a run that does not
// exist.
func TestEventStream(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.etl, "etl-0001")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/runs/etl-0001/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	r := bufio.NewReader(resp.Body)
	name, data := readEvent(t, r)
	assert.Equal(t, "update", name)
	assert.Contains(t, data, `id="run-head"`)
	assert.Contains(t, data, "\n", "a multi-line fragment arrives whole")
	assert.NotContains(t, data, "<html", "the live part only")

	// A change: the cache entry of a task makes no difference to the run
	// page, a new state does. Deleting the run makes the stream say gone.
	_, err = e.st.DeleteRuns(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	name, data = readEvent(t, r)
	assert.Equal(t, "gone", name)
	assert.Equal(t, "This run no longer exists.", data)
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the stream ends")

	resp2, err := http.Get(e.srv.URL + "/events?flow=etl")
	require.NoError(t, err)
	defer resp2.Body.Close()
	name, data = readEvent(t, bufio.NewReader(resp2.Body))
	assert.Equal(t, "update", name)
	assert.Contains(t, data, "No runs match this filter.")
}

// readEvent reads one event, skipping comments, and joins its data lines.
func readEvent(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	var lines []string
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && name != "":
			return name, strings.Join(lines, "\n")
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			lines = append(lines, line[len("data: "):])
		case line == "data:":
			lines = append(lines, "")
		}
	}
}

func TestBasePathAndOddRunIDs(t *testing.T) {
	e := newEnv(t)
	id := "nightly/2026-12-02 03:00 <b>"
	e.run(t, e.flows.etl, id)
	h := dashboard.New(e.st, dashboard.Options{Flows: e.flows.all(), BasePath: "/ops/flows/"})
	mux := http.NewServeMux()
	mux.Handle("/ops/flows/", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	status, body := get(t, srv.URL+"/ops/flows/")
	require.Equal(t, 200, status)
	link := "/ops/flows/runs/" + url.PathEscape(id)
	assert.Contains(t, body, `href="`+link+`"`)
	assert.Contains(t, body, `/ops/flows/assets/style.css?v=`)
	assert.Contains(t, body, "03:00 &lt;b&gt;")
	assert.NotContains(t, body, "03:00 <b>", "escaped")

	status, body = get(t, srv.URL+link)
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, `data-live="`+link+`/events"`)
	assert.Contains(t, body, `<svg class="graph"`)
	status, _ = get(t, srv.URL+"/ops/flows/assets/style.css")
	assert.Equal(t, 200, status)
	status, _ = get(t, srv.URL+"/ops/flows/runs/"+url.PathEscape(id)+"/timeline.svg")
	assert.Equal(t, 200, status)
}

func TestUnknownFlowAndClosedStore(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.report, "report-0001")
	// A dashboard that was not given the flow still shows the run.
	bare := httptest.NewServer(dashboard.New(e.st, dashboard.Options{}))
	defer bare.Close()
	status, body := get(t, bare.URL+"/runs/report-0001")
	require.Equal(t, 200, status)
	assert.Contains(t, body, "The graph of flow &#34;report&#34; is not shown")
	assert.NotContains(t, body, `<svg class="graph"`)
	assert.Contains(t, body, `data-task="render[1]"`, "the task table without the flow")
	assert.Contains(t, body, `children of render`, "mapped children grouped under their node")
	status, _ = get(t, bare.URL+"/runs/report-0001/graph.svg")
	assert.Equal(t, 404, status)

	// A store that fails: a page that says so, not a crash.
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "closed.db"), sqlite.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	closed := httptest.NewServer(dashboard.New(st, dashboard.Options{}))
	defer closed.Close()
	status, body = get(t, closed.URL+"/")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, "The run store is unavailable")
}

func TestNewPanicsOnNilStore(t *testing.T) {
	assert.PanicsWithValue(t, "dashboard: New with a nil store", func() { dashboard.New(nil, dashboard.Options{}) })
}

// TestRunActionsRecordRequests: cancel and retry record their requests in
// the store and go back to the run's page, which says so; a run in the
// wrong state is 409 and nothing is recorded.
func TestRunActionsRecordRequests(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.flows.report, "report-0001")
	e.run(t, e.flows.etl, "etl-0001")
	ctx := context.Background()
	require.NoError(t, e.st.CreateRun(ctx, store.Run{ID: "running-0001", Flow: "gated", State: "Running", Created: time.Now()}))
	form := url.Values{"token": {e.h.Token()}}

	status, loc, _ := post(t, e.srv.URL+"/runs/report-0001/retry", form, nil)
	assert.Equal(t, http.StatusSeeOther, status)
	assert.Equal(t, "/runs/report-0001?done=retry", loc)
	run, err := e.st.Run(ctx, "report-0001")
	require.NoError(t, err)
	assert.False(t, run.RetryRequested.IsZero())
	_, body := get(t, e.srv.URL+loc)
	assert.Contains(t, body, `id="retry-requested"`)
	assert.Contains(t, body, "Retry requested: a service running flow.Serve")
	assert.NotContains(t, body, `id="retry"`, "no second retry button while one is pending")

	status, loc, _ = post(t, e.srv.URL+"/runs/running-0001/cancel", form, nil)
	assert.Equal(t, http.StatusSeeOther, status)
	assert.Equal(t, "/runs/running-0001?done=cancel", loc)
	run, err = e.st.Run(ctx, "running-0001")
	require.NoError(t, err)
	assert.False(t, run.CancelRequested.IsZero())
	_, body = get(t, e.srv.URL+"/runs/running-0001")
	assert.Contains(t, body, `id="cancel-requested"`)
	assert.NotContains(t, body, `id="cancel"`)
	_, body = get(t, e.srv.URL+"/")
	assert.Contains(t, body, "cancel requested")
	assert.Contains(t, body, "retry requested")

	for _, tc := range []struct{ path, want string }{
		{"/runs/etl-0001/retry", "This run cannot be retried"},
		{"/runs/running-0001/retry", "This run cannot be retried"},
		{"/runs/etl-0001/cancel", "This run cannot be cancelled"},
	} {
		status, _, body := post(t, e.srv.URL+tc.path, form, nil)
		assert.Equal(t, http.StatusConflict, status, tc.path)
		assert.Contains(t, body, tc.want, tc.path)
	}
	run, err = e.st.Run(ctx, "etl-0001")
	require.NoError(t, err)
	assert.True(t, run.RetryRequested.IsZero() && run.CancelRequested.IsZero(), "nothing recorded")

	status, _, _ = post(t, e.srv.URL+"/runs/nope/cancel", form, nil)
	assert.Equal(t, http.StatusNotFound, status)
	status, _, _ = post(t, e.srv.URL+"/runs/report-0001/cancel", url.Values{}, nil)
	assert.Equal(t, http.StatusForbidden, status, "no token")
}
