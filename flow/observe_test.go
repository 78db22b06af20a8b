package flow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/observe"
	"github.com/flowline-go/flowline/observe/observetest"
	"github.com/flowline-go/flowline/task"
)

// checkTree checks that the spans form one trace under one flow span:
// every task run's parent is the flow's (or, for a mapped child, its
// mapped node's), every attempt's is its task run's, and every span ended.
func checkTree(t *testing.T, spans []observetest.Span) map[string]observetest.Span {
	t.Helper()
	byID := map[string]observetest.Span{}
	var root *observetest.Span
	for i, s := range spans {
		byID[s.ID] = s
		assert.True(t, s.Ended, "span %s ended", s.Name)
		if s.Kind == observetest.Flow {
			require.Nil(t, root, "one flow span")
			root = &spans[i]
		}
	}
	require.NotNil(t, root)
	for _, s := range spans {
		assert.Equal(t, root.Trace, s.Trace, "span %s in the flow's trace", s.Name)
		switch s.Kind {
		case observetest.Task:
			want := root.ID
			if s.TaskRun.Label != s.TaskRun.Task { // a mapped child, "name[i]"
				p, ok := byID[s.Parent]
				require.True(t, ok, "parent of %s", s.Name)
				assert.True(t, p.TaskRun.Mapped, "%s's parent is its mapped node", s.Name)
				assert.Equal(t, s.TaskRun.Task, p.Name)
				want = p.ID
			}
			assert.Equal(t, want, s.Parent, "parent of %s", s.Name)
		case observetest.Attempt:
			p, ok := byID[s.Parent]
			require.True(t, ok, "parent of %s", s.Name)
			assert.Equal(t, observetest.Task, p.Kind)
			assert.Equal(t, fmt.Sprintf("%s#%d", p.Name, s.Attempt.N), s.Name)
		}
	}
	return byID
}

func TestObserverSeesRunsTasksAndAttemptsExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 1})
		defer ex.Shutdown(context.Background())
		var mu sync.Mutex
		seen := map[string]executor.Identity{}
		var lines bytes.Buffer
		logger := hclog.New(&hclog.LoggerOptions{Output: &syncWriter{w: &lines}, JSONFormat: true, Level: hclog.Info})
		var failed atomic.Bool
		flaky := task.New("flaky", func(ctx context.Context, n int) (int, error) {
			id, _ := executor.CallInfo(ctx)
			mu.Lock()
			seen[fmt.Sprintf("flaky#%d", id.Attempt)] = id
			mu.Unlock()
			executor.Logger(ctx).Info("working")
			time.Sleep(time.Second)
			if !failed.Swap(true) {
				return 0, errors.New("once")
			}
			return n, nil
		}, task.Options{MaxRetries: 1})
		slow := task.New("slow", func(ctx context.Context, n int) (int, error) {
			time.Sleep(2 * time.Second)
			return n * 10, nil
		}, task.Options{Timeout: time.Hour})
		b := flow.New("observed", flow.Options{})
		a := flow.Add(b, flaky, flow.Const(1))
		flow.Map(b, slow, flow.Combine2(a, flow.Const(0), func(n, _ int) []int { return []int{n, n + 1} }))
		f, err := b.Build()
		require.NoError(t, err)

		rec := &observetest.Recorder{}
		start := time.Now()
		res, err := f.Run(context.Background(), ex, flow.RunOptions{Observer: rec, Logger: logger, RunID: "r1"})
		require.NoError(t, err)
		byID := checkTree(t, rec.Spans())
		assert.Len(t, byID, 1+1+2+1+2+2, "flow, flaky and its two attempts, slow and its two children and their attempts")

		spans := map[string]observetest.Span{}
		for _, s := range byID {
			spans[s.Name] = s
		}
		fs := spans["observed"]
		assert.Equal(t, "Success", fs.Flow.State)
		assert.Equal(t, "r1", fs.Flow.RunID)
		assert.Equal(t, 2, fs.Flow.Tasks)
		assert.Equal(t, start, fs.Flow.Start)
		assert.Equal(t, 6*time.Second, fs.Flow.End.Sub(fs.Flow.Start), "2 x 1s flaky, then two 2s children one after the other")

		a1, a2 := spans["flaky#1"].Attempt, spans["flaky#2"].Attempt
		assert.Equal(t, "failure", a1.Class)
		assert.True(t, a1.Retry)
		assert.Equal(t, time.Duration(0), a1.Queued)
		assert.Equal(t, time.Second, a1.Running)
		assert.NoError(t, a2.Err)
		assert.False(t, a2.Retry)
		assert.Equal(t, time.Second, a2.Running)
		tr := spans["flaky"].TaskRun
		assert.Equal(t, "Success", tr.State)
		assert.Equal(t, 2, tr.Attempts)
		assert.Equal(t, "r1/flaky", tr.RunID)

		// One worker: the second child waits for the first.
		c0, c1 := spans["slow[0]#1"].Attempt, spans["slow[1]#1"].Attempt
		assert.Equal(t, 2*time.Second, c0.Running)
		assert.Equal(t, 2*time.Second, c1.Running)
		assert.Equal(t, 2*time.Second, c0.Queued+c1.Queued, "one of them queued for the other's 2s")
		m := spans["slow"].TaskRun
		assert.True(t, m.Mapped)
		assert.Equal(t, 2, m.Children)
		assert.Equal(t, "Success", m.State)
		assert.Equal(t, 4*time.Second, m.End.Sub(m.Start))

		// The task saw its attempt's trace context, and its log line
		// carries the ids.
		for _, n := range []string{"flaky#1", "flaky#2"} {
			s := spans[n]
			assert.Equal(t, "00-"+s.Trace+"-"+s.ID+"-01", seen[n].TraceParent, n)
			assert.Equal(t, "observetest=1", seen[n].TraceState, n)
		}
		dec := json.NewDecoder(bytes.NewReader(lines.Bytes()))
		var logged []string
		for dec.More() {
			var m map[string]any
			require.NoError(t, dec.Decode(&m))
			if m["@message"] == "working" {
				assert.Equal(t, spans["flaky#1"].Trace, m["trace_id"])
				logged = append(logged, m["span_id"].(string))
			}
		}
		assert.Equal(t, []string{spans["flaky#1"].ID, spans["flaky#2"].ID}, logged)
		assert.Equal(t, task.Success, res.State)
	})
}

func TestObserverSeesTimeoutsSkipsAndCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := pool.New(pool.Options{Workers: 2})
		defer ex.Shutdown(context.Background())
		stubborn := task.New("stubborn", func(ctx context.Context, _ int) (int, error) {
			time.Sleep(5 * time.Second) // ignores its context: abandoned at the limit
			return 0, nil
		}, task.Options{Timeout: time.Second})
		after := task.New("after", func(ctx context.Context, n int) (int, error) { return n, nil }, task.Options{})
		b := flow.New("late", flow.Options{})
		s := flow.Add(b, stubborn, flow.Const(0))
		flow.Add(b, after, s)
		f, err := b.Build()
		require.NoError(t, err)
		rec := &observetest.Recorder{}
		res, err := f.Run(context.Background(), ex, flow.RunOptions{Observer: rec})
		require.Error(t, err)
		assert.Equal(t, task.Failed, res.State)
		spans := map[string]observetest.Span{}
		for _, s := range checkTree(t, rec.Spans()) {
			spans[s.Name] = s
		}
		at := spans["stubborn#1"].Attempt
		assert.True(t, at.TimedOut)
		assert.Equal(t, "timeout", at.Class)
		assert.Equal(t, "soft", at.Enforcement)
		assert.False(t, at.Stopped)
		assert.True(t, at.Abandoned)
		assert.Equal(t, time.Second, at.Running)
		assert.Equal(t, "TimedOut", spans["stubborn"].TaskRun.State)
		assert.Equal(t, "TriggerFailed", spans["after"].TaskRun.State)
		assert.Equal(t, 0, spans["after"].TaskRun.Attempts)
		assert.Equal(t, "Failed", spans["late"].Flow.State)
		assert.Error(t, spans["late"].Flow.Err)
		time.Sleep(5 * time.Second) // the abandoned work returns inside the bubble
	})
}

func TestObserverOnLocalAndWithoutObserver(t *testing.T) {
	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	var tp string
	probe := task.New("probe", func(ctx context.Context, _ int) (int, error) {
		id, _ := executor.CallInfo(ctx)
		tp = id.TraceParent
		return 0, nil
	}, task.Options{})
	b := flow.New("probe", flow.Options{})
	flow.Add(b, probe, flow.Const(0))
	f, err := b.Build()
	require.NoError(t, err)
	_, err = f.Run(context.Background(), ex, flow.RunOptions{})
	require.NoError(t, err)
	assert.Empty(t, tp, "no observer, no trace context")

	rec := &observetest.Recorder{}
	_, err = f.Run(context.Background(), ex, flow.RunOptions{Observer: rec})
	require.NoError(t, err)
	spans := checkTree(t, rec.Spans())
	assert.Len(t, spans, 3)
	_, err = observe.ParseTraceParent(tp)
	assert.NoError(t, err, "the inline call carried its attempt's trace context")
}

// TestObserverManyTasksRealClock: a 1,000-task mapped flow on a real pool,
// under -race: one trace, every parent right, every span ended.
func TestObserverManyTasksRealClock(t *testing.T) {
	ex := pool.New(pool.Options{Workers: 4})
	defer ex.Shutdown(context.Background())
	double := task.New("double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil }, task.Options{})
	b := flow.New("many", flow.Options{})
	in := make([]int, 1000)
	flow.Map(b, double, flow.Const(in))
	f, err := b.Build()
	require.NoError(t, err)
	rec := &observetest.Recorder{}
	_, err = f.Run(context.Background(), ex, flow.RunOptions{Observer: rec})
	require.NoError(t, err)
	spans := checkTree(t, rec.Spans())
	assert.Len(t, spans, 1+1+1000+1000)
	for _, s := range spans {
		if s.Kind == observetest.Attempt {
			assert.GreaterOrEqual(t, s.Attempt.Running, time.Duration(0))
			assert.False(t, s.Attempt.End.Before(s.Attempt.Start))
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestRestartedRunContinuesItsTrace: a durable run records its trace
// context; a restart of it is a child of the first run's span, in the
// same trace.
func TestRestartedRunContinuesItsTrace(t *testing.T) {
	st := openStore(t, t.TempDir()+"/runs.db")
	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	var fail atomic.Bool
	fail.Store(true)
	flaky := task.New("flaky", func(ctx context.Context, _ int) (int, error) {
		if fail.Load() {
			return 0, errors.New("down")
		}
		return 1, nil
	}, task.Options{})
	b := flow.New("durable-trace", flow.Options{})
	flow.Add(b, flaky, flow.Const(0))
	f, err := b.Build()
	require.NoError(t, err)

	first := &observetest.Recorder{}
	res, err := f.Run(context.Background(), ex, flow.RunOptions{Store: st, RunID: "d1", Observer: first})
	require.Error(t, err)
	require.Equal(t, task.Failed, res.State)
	root := first.Spans()[0]
	require.Equal(t, observetest.Flow, root.Kind)
	tp, _, err := st.RunTrace(context.Background(), "d1")
	require.NoError(t, err)
	assert.Equal(t, "00-"+root.Trace+"-"+root.ID+"-01", tp, "the run's trace context is recorded")

	fail.Store(false)
	again := &observetest.Recorder{}
	res, err = f.Restart(context.Background(), ex, "d1", flow.RunOptions{Store: st, Observer: again})
	require.NoError(t, err)
	require.Equal(t, task.Success, res.State)
	spans := again.Spans()
	require.NotEmpty(t, spans)
	resumed := spans[0]
	assert.Equal(t, observetest.Flow, resumed.Kind)
	assert.True(t, resumed.Flow.Resumed)
	assert.Equal(t, root.Trace, resumed.Trace, "the restart continues the first run's trace")
	assert.Equal(t, root.ID, resumed.Parent, "as a child of the first run's span")
	for _, s := range spans {
		assert.Equal(t, root.Trace, s.Trace, s.Name)
	}
	tp2, _, err := st.RunTrace(context.Background(), "d1")
	require.NoError(t, err)
	assert.Equal(t, tp, tp2, "the recorded context stays the first run's")

	// Replaying the ended run by id reports nothing.
	replay := &observetest.Recorder{}
	_, err = f.Run(context.Background(), ex, flow.RunOptions{Store: st, RunID: "d1", Observer: replay})
	require.NoError(t, err)
	assert.Empty(t, replay.Spans())
}
