package otel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

// TestSampleTrace runs a small flow on the cluster executor (an embedded
// NATS server, a worker in this process with the observer on its
// registry) with a retry and a failure, and checks the span tree; with
// -v it prints the tree that docs/observability.md shows.
func TestSampleTrace(t *testing.T) {
	tel := newTelemetry(t)
	var tries atomic.Int32
	fetch := task.New("fetch", func(ctx context.Context, day string) ([]int, error) {
		if tries.Add(1) == 1 {
			return nil, errors.New("connection reset")
		}
		return []int{3, 5}, nil
	}, task.Options{MaxRetries: 2})
	b := flow.New("report", flow.Options{})
	flow.Map(b, work, flow.Add(b, fetch, flow.Const("mon")))
	f, err := b.Build()
	require.NoError(t, err)
	reg := registry() // the worker finds tasks by name: fetch too
	require.NoError(t, reg.Register(fetch.Handler()))
	ex := newClusterWith(t, tel, reg)
	defer func() { assert.NoError(t, ex.Shutdown(context.Background())) }()

	res, err := f.Run(context.Background(), ex, flow.RunOptions{Observer: tel.obs, RunID: "report-mon"})
	require.NoError(t, err)
	require.Equal(t, task.Success, res.State)

	var out bytes.Buffer
	tree(&out, tel.spans.Ended())
	t.Log("\n" + out.String())
	want := []string{
		"RUN report",
		"  fetch",
		"    fetch attempt",
		"      fetch worker",
		"    fetch attempt",
		"      fetch worker",
		"  work",
		"    work",
		"      work attempt",
		"        work worker",
		"    work",
		"      work attempt",
		"        work worker",
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		got = append(got, strings.TrimRight(l[:strings.Index(l, "  [")], " "))
	}
	assert.Equal(t, want, got)
}

// tree writes the spans as an indented tree, children in start order,
// with each span's duration and its most telling attributes.
func tree(w *bytes.Buffer, spans []sdktrace.ReadOnlySpan) {
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent().SpanID(); ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	keep := map[string]bool{"cicd.pipeline.run.id": true, "cicd.pipeline.result": true, "cicd.pipeline.task.run.id": true,
		"cicd.pipeline.task.run.result": true, "flowline.attempt": true, "flowline.attempt.result": true,
		"flowline.attempt.retry": true, "flowline.executor": true, "error.type": true, "flowline.worker": true,
		"flowline.task.children": true}
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		var attrs []string
		for _, kv := range s.Attributes() {
			if keep[string(kv.Key)] {
				attrs = append(attrs, fmt.Sprintf("%s=%s", kv.Key, kv.Value.String()))
			}
		}
		sort.Strings(attrs)
		fmt.Fprintf(w, "%-28s  [%s %v trace=%s…] %s\n", strings.Repeat("  ", depth)+s.Name(), s.SpanKind(),
			s.EndTime().Sub(s.StartTime()).Round(10*time.Microsecond), s.SpanContext().TraceID().String()[:8], strings.Join(attrs, " "))
		kids := children[s.SpanContext().SpanID()]
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].StartTime().Before(kids[j].StartTime()) })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
}

// TestRestartContinuesTheTrace: a durable run's restart (SQLite store)
// is a child of the first run's span, in its trace.
func TestRestartContinuesTheTrace(t *testing.T) {
	tel := newTelemetry(t)
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/runs.db", sqlite.Options{})
	require.NoError(t, err)
	defer st.Close()
	var down atomic.Bool
	down.Store(true)
	flaky := task.New("flaky", func(ctx context.Context, _ int) (int, error) {
		if down.Load() {
			return 0, errors.New("down")
		}
		return 1, nil
	}, task.Options{})
	b := flow.New("durable", flow.Options{})
	flow.Add(b, flaky, flow.Const(0))
	f, err := b.Build()
	require.NoError(t, err)
	ex := pool.New(pool.Options{Workers: 2})
	defer ex.Shutdown(context.Background())
	_, err = f.Run(context.Background(), ex, flow.RunOptions{Store: st, RunID: "d", Observer: tel.obs})
	require.Error(t, err)
	down.Store(false)
	_, err = f.Restart(context.Background(), ex, "d", flow.RunOptions{Store: st, Observer: tel.obs})
	require.NoError(t, err)
	var runs []sdktrace.ReadOnlySpan
	for _, s := range tel.spans.Ended() {
		if s.Name() == "RUN durable" {
			runs = append(runs, s)
		}
	}
	require.Len(t, runs, 2)
	first, again := runs[0], runs[1]
	assert.Equal(t, first.SpanContext().TraceID(), again.SpanContext().TraceID(), "one trace")
	assert.Equal(t, first.SpanContext().SpanID(), again.Parent().SpanID(), "the restart is a child of the first run")
	assert.False(t, first.Parent().IsValid())
	assert.True(t, attr(again, "flowline.run.resumed").AsBool())
	assert.Equal(t, "failure", attr(first, "cicd.pipeline.result").AsString())
	assert.Equal(t, "success", attr(again, "cicd.pipeline.result").AsString())
}
