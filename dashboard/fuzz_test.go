package dashboard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzGET sends the dashboard arbitrary paths and queries, as a browser
// (or anyone) can: it never panics, and answers with a page and one of
// the statuses it documents.
func FuzzGET(f *testing.F) {
	e := newEnv(f)
	e.run(f, e.flows.report, "report-0001")
	e.run(f, e.flows.etl, "odd/id %zz")
	for _, seed := range []string{
		"/", "/?flow=report&state=Failed,Success&since=6h&until=2026-12-02T03:04&limit=5",
		"/?state=%00", "/?since=-5d", "/?since=99999999999999999999h", "/?limit=-1", "/?until=2026-13-45",
		"/runs/report-0001", "/runs/report-0001/graph.svg", "/runs/report-0001/timeline.svg", "/runs/report-0001/events",
		"/runs/odd%2Fid%20%25zz", "/runs/%ff%fe", "/runs/", "/runs/x/y/z", "/cache?prefix=%ff", "/assets/style.css",
		"/assets/../../go.mod", "/events?state=Nope", "/events", "//", "/runs/report-0001/cancel",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(u.Path, "/") || u.Host != "" {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if strings.HasSuffix(u.Path, "/events") { // a stream lasts as long as its request
			ctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
		}
		req := (&http.Request{Method: http.MethodGet, URL: u, Host: "dash.test", Header: http.Header{}, RequestURI: target}).WithContext(ctx)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 301, 307, 308, 400, 404, 405:
		default:
			t.Fatalf("GET %s: status %d: %.300s", target, w.Code, w.Body.String())
		}
		if body := w.Body.String(); w.Code >= 400 && !strings.Contains(body, "</html>") && !strings.Contains(body, "bad filter") {
			t.Fatalf("GET %s: status %d without a page: %.300s", target, w.Code, w.Body.String())
		}
	})
}
