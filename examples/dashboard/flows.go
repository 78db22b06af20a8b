package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func attempt(ctx context.Context) int {
	id, _ := task.Info(ctx)
	return id.Attempt
}

// etlFlow succeeds: extract the tables (cached for 10 minutes: the
// dashboard's Cache page lists the entry), transform each (one connection
// drops on the first try and is retried), load.
func etlFlow() *flow.Flow {
	extract := task.New("extract", func(ctx context.Context, _ struct{}) ([]string, error) {
		return []string{"orders", "refunds", "customers", "invoices", "shipments", "returns", "products", "stock"}, sleep(ctx, 80*time.Millisecond)
	}, task.Options{CacheFor: 10 * time.Minute}) // later runs find it Cached, until invalidated
	transform := task.New("transform", func(ctx context.Context, table string) (int, error) {
		if err := sleep(ctx, time.Duration(60+rand.IntN(200))*time.Millisecond); err != nil {
			return 0, err
		}
		if table == "customers" && attempt(ctx) == 1 {
			return 0, errors.New("read customers: connection reset by peer")
		}
		return len(table) * 1000, nil
	}, task.Options{MaxRetries: 2, RetryDelay: 150 * time.Millisecond})
	load := task.New("load", func(ctx context.Context, rows []int) (int, error) {
		n := 0
		for _, r := range rows {
			n += r
		}
		return n, sleep(ctx, 120*time.Millisecond)
	}, task.Options{})
	b := flow.New("etl", flow.Options{})
	flow.Add(b, load, flow.Map(b, transform, flow.Add(b, extract, nil)))
	return build(b)
}

// reportFlow fails: one page's template misses a key on its first
// attempt, so publish never runs. Retrying the run from the dashboard
// renders that page again (attempt 2), which works, and the run
// succeeds: the other tasks keep their results.
func reportFlow() *flow.Flow {
	fetch := task.New("fetch", func(ctx context.Context, _ struct{}) ([]string, error) {
		return []string{"home", "pricing", "docs", "blog", "careers"}, sleep(ctx, 60*time.Millisecond)
	}, task.Options{})
	render := task.New("render", func(ctx context.Context, page string) (string, error) {
		if err := sleep(ctx, time.Duration(40+rand.IntN(120))*time.Millisecond); err != nil {
			return "", err
		}
		if page == "pricing" && attempt(ctx) == 1 {
			return "", fmt.Errorf("render %s: template %q: missing key \"price\"", page, page+".html")
		}
		return "<html>" + page + "</html>", nil
	}, task.Options{})
	publish := task.New("publish", func(ctx context.Context, pages []string) (int, error) {
		return len(pages), sleep(ctx, 50*time.Millisecond)
	}, task.Options{})
	archive := task.New("archive", func(ctx context.Context, _ struct{}) (int, error) {
		return 1, sleep(ctx, 90*time.Millisecond)
	}, task.Options{})
	b := flow.New("report", flow.Options{})
	pages := flow.Add(b, fetch, nil)
	flow.Add(b, publish, flow.Map(b, render, pages))
	flow.Add(b, archive, nil).After(pages)
	return build(b)
}

// slowFlow times out: the API answers in 2 s, the limit is 300 ms, one
// retry, then the run fails TimedOut.
func slowFlow() *flow.Flow {
	call := task.New("call-api", func(ctx context.Context, _ struct{}) (string, error) {
		return "ok", sleep(ctx, 2*time.Second)
	}, task.Options{Timeout: 300 * time.Millisecond, MaxRetries: 1, RetryDelay: 200 * time.Millisecond})
	notify := task.New("notify", func(ctx context.Context, s string) (string, error) { return s, nil }, task.Options{})
	b := flow.New("slow-api", flow.Options{})
	flow.Add(b, notify, flow.Add(b, call, nil))
	return build(b)
}

// nightlyFlow runs long: a chain of maintenance steps and a mapped
// analysis, each step_ms long (4 s by default: about half a minute).
func nightlyFlow() (*flow.Flow, *flow.Parameter[int]) {
	b := flow.New("nightly", flow.Options{})
	stepMS := flow.ParamOr(b, "step_ms", 4000)
	step := func(name string) *task.Task[int, int] {
		return task.New(name, func(ctx context.Context, ms int) (int, error) {
			return ms, sleep(ctx, time.Duration(ms)*time.Millisecond)
		}, task.Options{})
	}
	analyze := task.New("analyze", func(ctx context.Context, ms int) (int, error) {
		return ms, sleep(ctx, time.Duration(ms)*time.Millisecond)
	}, task.Options{})
	backup := flow.Add(b, step("backup"), stepMS)
	vacuum := flow.Add(b, step("vacuum"), stepMS).After(backup)
	reindex := flow.Add(b, step("reindex"), stepMS).After(vacuum)
	parts := flow.Combine2(stepMS, reindex, func(ms, _ int) []int { return []int{ms, ms, ms, ms, ms, ms} })
	flow.Add(b, step("summary"), flow.Combine2(stepMS, flow.Map(b, analyze, parts), func(ms int, _ []int) int { return ms }))
	return build(b), stepMS
}

func build(b *flow.Builder) *flow.Flow {
	f, err := b.Build()
	if err != nil {
		panic(err) // the flows above are fixed: a build error is a bug here
	}
	return f
}
