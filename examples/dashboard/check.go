package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flowline-go/flowline/store"
)

// check drives one run of each flow to its end and checks what the
// dashboard and /metrics serve about them.
func (s *service) check(ctx context.Context, base, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c := &checker{ctx: ctx, base: base, token: token}
	etl := s.start(ctx, s.etl)
	report := s.start(ctx, s.report)
	slow := s.start(ctx, s.slow)
	nightly := s.start(ctx, s.nightly, s.stepMS.Set(30))
	for id, want := range map[string]string{etl: "Success", report: "Failed", slow: "Failed", nightly: "Success"} {
		run, err := s.waitEnded(ctx, id)
		if err != nil {
			return err
		}
		if run.State != want {
			return fmt.Errorf("run %s ended %s, not %s: %s", id, run.State, want, run.ErrMessage)
		}
	}
	fmt.Println("ok: one run of each flow ended as it should (etl Success, report Failed, slow-api Failed by a timeout, nightly Success)")

	list := c.get("", 200)
	for _, id := range []string{etl, report, slow, nightly} {
		c.want(list, `data-run="`+id+`"`, "the runs list shows "+id)
	}
	c.want(list, `data-run="`+report+`" data-state="Failed"`, "the list shows the failed run as failed")
	page := c.get("runs/"+url.PathEscape(report), 200)
	c.want(page, `<svg class="graph"`, "the run page has the flow's graph")
	c.want(page, `class="node state-Failed" data-task="render"`, "the graph colours the failed node")
	c.want(page, `class="attempt"`, "the run page has the timeline")
	c.want(page, `data-task="render[1]" data-state="Failed"`, "the task table has the failed child")
	c.want(page, `missing key &#34;price&#34;`, "the task table shows the error")
	c.get("runs/no-such-run", 404)
	slowPage := c.get("runs/"+url.PathEscape(slow), 200)
	c.want(slowPage, `data-task="call-api" data-state="TimedOut"`, "the timed-out task")
	m := c.get("metrics", 200)
	c.want(m, `flowline_store_runs{cicd_pipeline_name="report",flowline_state="Failed"} 1`, "/metrics counts the runs")
	c.want(m, `flowline_executor_calls_ended_total{flowline_call_outcome="timeout",flowline_executor="pool"} 2`, "/metrics counts the timeouts")
	if c.err != nil {
		return c.err
	}
	fmt.Println("ok: the runs list, a run page (graph, timeline, task table, error) and /metrics show them; an unknown run is a 404")

	cache := c.get("cache?prefix=extract/", 200)
	c.want(cache, "1 unexpired entry", "the cache page lists etl's cached extract")
	if loc := c.postForm("cache/invalidate", url.Values{"prefix": {"extract/"}}, 303); loc != "/cache?done=invalidate&n=1" && c.err == nil {
		c.fail("the invalidate went to %q, not /cache?done=invalidate&n=1", loc)
	}
	if es, err := s.st.CacheEntries(ctx, "extract/"); err != nil || len(es) != 0 {
		c.fail("after the dashboard's invalidate: %d entries, %v", len(es), err)
	}
	if c.err != nil {
		return c.err
	}
	fmt.Println("ok: the cache page listed etl's cached result and its Invalidate button deleted it")
	return s.checkSteer(c, report)
}

// waitEnded waits for run id to end.
func (s *service) waitEnded(ctx context.Context, id string) (store.Run, error) {
	for {
		run, err := s.st.Run(ctx, id)
		if err == nil && run.Finished() {
			return run, nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return run, err
		}
		select {
		case <-ctx.Done():
			return run, fmt.Errorf("run %s did not end: %w", id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checker fetches pages and keeps the first problem.
type checker struct {
	ctx   context.Context
	base  string
	token string
	err   error
}

func (c *checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

func (c *checker) get(path string, status int) string {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		c.fail("%v", err)
		return ""
	}
	return c.do(req, status)
}

// post sends a form as the dashboard's own page would, with its token.
func (c *checker) post(path string, status int) { c.postForm(path, url.Values{}, status) }

// postForm sends form with the token and returns where it redirects.
func (c *checker) postForm(path string, form url.Values, status int) string {
	form.Set("token", c.token)
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.fail("%v", err)
		return ""
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	loc := ""
	c.doFunc(req, status, func(resp *http.Response) { loc = resp.Header.Get("Location") })
	return loc
}

func (c *checker) do(req *http.Request, status int) string { return c.doFunc(req, status, nil) }

func (c *checker) doFunc(req *http.Request, status int, seen func(*http.Response)) string {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		c.fail("%s %s: %v", req.Method, req.URL, err)
		return ""
	}
	defer resp.Body.Close()
	if seen != nil {
		seen(resp)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.fail("%s %s: %v", req.Method, req.URL, err)
	}
	if resp.StatusCode != status {
		c.fail("%s %s: status %d, want %d: %.300s", req.Method, req.URL, resp.StatusCode, status, b)
	}
	return string(b)
}

func (c *checker) want(body, s, what string) {
	if !strings.Contains(body, s) {
		c.fail("%s: %q not found", what, s)
	}
}
