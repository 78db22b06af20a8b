package otel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/executor/subprocess"
	"github.com/flowline-go/flowline/flow"
	flotel "github.com/flowline-go/flowline/otel"
)

const manyTasks = 1000

// telemetry is an Observer over in-memory exporters.
type telemetry struct {
	obs    *flotel.Observer
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
}

func newTelemetry(t *testing.T) *telemetry {
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	t.Cleanup(func() {
		assert.NoError(t, tel.tp.Shutdown(context.Background()))
		assert.NoError(t, tel.mp.Shutdown(context.Background()))
	})
	obs, err := flotel.New(flotel.Options{TracerProvider: tel.tp, MeterProvider: tel.mp})
	require.NoError(t, err)
	tel.obs = obs
	return tel
}

// metrics collects and returns the data points by metric name.
func (tel *telemetry) metrics(t *testing.T) map[string]metricdata.Aggregation {
	var rm metricdata.ResourceMetrics
	require.NoError(t, tel.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sum returns the sum of an int64 counter's points whose attributes
// include want.
func sum(t *testing.T, agg metricdata.Aggregation, want ...attribute.KeyValue) int64 {
	t.Helper()
	var n int64
	pts := func(dps []metricdata.DataPoint[int64]) {
		for _, dp := range dps {
			if has(dp.Attributes, want) {
				n += dp.Value
			}
		}
	}
	switch a := agg.(type) {
	case metricdata.Sum[int64]:
		pts(a.DataPoints)
	case metricdata.Gauge[int64]:
		pts(a.DataPoints)
	default:
		t.Fatalf("not an int64 sum or gauge: %T", agg)
	}
	return n
}

// count returns the count and sum of a histogram's points whose
// attributes include want.
func count(t *testing.T, agg metricdata.Aggregation, want ...attribute.KeyValue) (uint64, float64) {
	t.Helper()
	h, ok := agg.(metricdata.Histogram[float64])
	require.True(t, ok, "a float64 histogram: %T", agg)
	var n uint64
	var s float64
	for _, dp := range h.DataPoints {
		if has(dp.Attributes, want) {
			n += dp.Count
			s += dp.Sum
		}
	}
	return n, s
}

func has(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// lines is a concurrency-safe JSON log sink.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// ran returns the "ran" log lines' trace and span ids, by n.
func (l *lines) ran(t *testing.T) map[int][2]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int][2]string{}
	dec := json.NewDecoder(bytes.NewReader(l.buf.Bytes()))
	for dec.More() {
		var m map[string]any
		require.NoError(t, dec.Decode(&m))
		if m["@message"] != "ran" {
			continue
		}
		n := int(toFloat(m["n"]))
		tid, _ := m["trace_id"].(string)
		sid, _ := m["span_id"].(string)
		out[n] = [2]string{tid, sid}
	}
	return out
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return -1
}

// manyFlow maps work over 0..manyTasks-1.
func manyFlow(t *testing.T) *flow.Flow {
	b := flow.New("many", flow.Options{})
	in := make([]int, manyTasks)
	for i := range in {
		in[i] = i
	}
	flow.Map(b, work, flow.Const(in))
	f, err := b.Build()
	require.NoError(t, err)
	return f
}

// setup is one executor for the 1,000-task test, with what the test
// expects of its worker spans.
type setup struct {
	name string
	make func(t *testing.T, tel *telemetry) executor.Executor
	// workerSpans: the worker spans are in the recorder (a cluster
	// worker in this process); workerProcess: they are made in a child
	// process, seen only through the Probe and the log lines.
	workerSpans, workerProcess bool
}

func setups() []setup {
	s := []setup{
		{name: "local", make: func(t *testing.T, _ *telemetry) executor.Executor { return local.New(local.Options{}) }},
		{name: "pool", make: func(t *testing.T, _ *telemetry) executor.Executor { return pool.New(pool.Options{Workers: 4}) }},
		{name: "cluster", workerSpans: true, make: newCluster},
	}
	if runtime.GOOS == "linux" {
		s = append(s, setup{name: "subprocess", workerProcess: true, make: func(t *testing.T, _ *telemetry) executor.Executor {
			t.Setenv("FLOTEL_TEST_WORKER_OBSERVER", "1") // the workers inherit it
			ex, err := subprocess.New(subprocess.Options{Workers: 2})
			require.NoError(t, err)
			return ex
		}})
	}
	return s
}

// newCluster starts an embedded NATS server, the executor that owns it
// and one worker in this process whose registry has the test's observer.
func newCluster(t *testing.T, tel *telemetry) executor.Executor {
	return newClusterWith(t, tel, registry())
}

// newClusterWith is newCluster whose worker serves reg.
func newClusterWith(t *testing.T, tel *telemetry, reg *executor.Registry) executor.Executor {
	srv, err := natsserver.Start(natsserver.Options{})
	require.NoError(t, err)
	ex, err := cluster.New(cluster.Options{Connection: cluster.Connection{Server: srv}, StopServer: true})
	require.NoError(t, err)
	reg.SetObserver(tel.obs)
	runner := pool.New(pool.Options{Workers: 8})
	w, err := cluster.NewWorker(cluster.WorkerOptions{Connection: cluster.Connection{Server: ex.Server()},
		Registry: reg, Executor: runner, Concurrency: 8})
	require.NoError(t, err)
	t.Cleanup(func() {
		// Workers first: the executor's Shutdown stops the server.
		assert.NoError(t, w.Shutdown(context.Background()))
		assert.NoError(t, runner.Shutdown(context.Background()))
	})
	return ex
}

// TestManyTasksOneTraceOnEveryExecutor runs 1,000 mapped tasks on each
// executor: one trace, every span's parent right, every worker-side log
// line carrying its trace and span ids, and the metrics counted exactly.
func TestManyTasksOneTraceOnEveryExecutor(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			tel := newTelemetry(t)
			ex := s.make(t, tel)
			reg, err := tel.obs.ObserveExecutor(s.name, ex)
			require.NoError(t, err)
			defer func() { assert.NoError(t, reg.Unregister()) }()
			defer func() { assert.NoError(t, ex.Shutdown(context.Background())) }()
			logs := &lines{}
			logger := hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Info})

			res, err := manyFlow(t).Run(context.Background(), ex, flow.RunOptions{Observer: tel.obs, Logger: logger, RunID: "run-" + s.name})
			require.NoError(t, err)
			checkSpans(t, s, tel, res, logs)
			checkMetrics(t, s.name, tel)
		})
	}
}

func checkSpans(t *testing.T, s setup, tel *telemetry, res *flow.Result, logs *lines) {
	spans := tel.spans.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var root sdktrace.ReadOnlySpan
	for _, sp := range spans {
		byID[sp.SpanContext().SpanID()] = sp
		if sp.Name() == "RUN many" {
			require.Nil(t, root, "one flow span")
			root = sp
		}
	}
	require.NotNil(t, root)
	assert.False(t, root.Parent().IsValid(), "the flow run is the root")
	assert.Equal(t, trace.SpanKindServer, root.SpanKind())
	assert.Equal(t, "success", attr(root, "cicd.pipeline.result").AsString())
	assert.Equal(t, "run-"+s.name, attr(root, "cicd.pipeline.run.id").AsString())
	traceID := root.SpanContext().TraceID()

	kinds := map[string]int{}
	attemptOf := map[int]trace.SpanID{} // n -> attempt span
	workerOf := map[int]trace.SpanID{}  // n -> worker span (cluster)
	var mapped trace.SpanID
	for _, sp := range spans {
		require.Equal(t, traceID, sp.SpanContext().TraceID(), "span %s is in the run's trace", sp.Name())
		if sp.Name() == "work" && attr(sp, "flowline.task.mapped").AsBool() {
			mapped = sp.SpanContext().SpanID()
		}
	}
	require.True(t, mapped.IsValid(), "the mapped node has a span")
	for _, sp := range spans {
		p, ok := byID[sp.Parent().SpanID()]
		switch {
		case sp == root:
			kinds["flow"]++
			continue
		case sp.SpanContext().SpanID() == mapped:
			kinds["mapped"]++
			assert.Equal(t, root.SpanContext().SpanID(), sp.Parent().SpanID())
			assert.Equal(t, int64(manyTasks), attr(sp, "flowline.task.children").AsInt64())
			continue
		}
		require.True(t, ok, "the parent of %s is a span of the trace", sp.Name())
		switch sp.Name() {
		case "work": // a mapped child's task run
			kinds["task"]++
			assert.Equal(t, mapped, p.SpanContext().SpanID(), "a child's parent is its mapped node")
			assert.Equal(t, "success", attr(sp, "cicd.pipeline.task.run.result").AsString())
			assert.Equal(t, "work", attr(sp, "cicd.pipeline.task.name").AsString())
		case "work attempt":
			kinds["attempt"]++
			assert.Equal(t, "work", p.Name(), "an attempt's parent is its task run")
			assert.Equal(t, mapped, p.Parent().SpanID())
			assert.Equal(t, trace.SpanKindClient, sp.SpanKind())
			assert.Equal(t, s.name, attr(sp, "flowline.executor").AsString())
			assert.Equal(t, int64(1), attr(sp, "flowline.attempt").AsInt64())
			label := attr(p, "flowline.task.label").AsString()
			attemptOf[labelIndex(t, label)] = sp.SpanContext().SpanID()
		case "work worker":
			kinds["worker"]++
			assert.Equal(t, "work attempt", p.Name(), "a worker span's parent is its attempt")
			assert.Equal(t, trace.SpanKindServer, sp.SpanKind())
			label := attr(byID[p.Parent().SpanID()], "flowline.task.label").AsString()
			workerOf[labelIndex(t, label)] = sp.SpanContext().SpanID()
		default:
			t.Errorf("unexpected span %q", sp.Name())
		}
	}
	want := map[string]int{"flow": 1, "mapped": 1, "task": manyTasks, "attempt": manyTasks}
	if s.workerSpans {
		want["worker"] = manyTasks
	}
	assert.Equal(t, want, kinds)

	// The task's log lines (from a worker process too) carry the trace id
	// and the span id of the span the task ran in.
	logged := logs.ran(t)
	require.Len(t, logged, manyTasks)
	probes := map[int]Probe{}
	for _, tr := range res.Tasks {
		if p, ok := tr.Value.(Probe); ok {
			probes[p.N] = p
		}
	}
	require.Len(t, probes, manyTasks)
	for n := range manyTasks {
		ids, p := logged[n], probes[n]
		require.Equal(t, traceID.String(), ids[0], "task %d's log line carries the trace id", n)
		require.Equal(t, traceID.String(), p.Trace, "task %d's context is in the trace", n)
		switch {
		case s.workerSpans:
			require.Equal(t, workerOf[n].String(), ids[1], "task %d logs its worker span", n)
			require.Equal(t, workerOf[n].String(), p.Span)
		case s.workerProcess:
			// The worker process made a span of its own, a child of
			// the attempt's: the log line and the task's context name it.
			require.NotEqual(t, os.Getpid(), p.Process, "ran in a worker process")
			require.Equal(t, attemptOf[n].String(), p.Parent, "task %d's worker span is a child of its attempt", n)
			require.Equal(t, p.Span, ids[1], "task %d logs its worker span", n)
		default:
			require.Equal(t, attemptOf[n].String(), ids[1], "task %d logs its attempt span", n)
			require.Equal(t, attemptOf[n].String(), p.Span)
		}
	}
}

func labelIndex(t *testing.T, label string) int {
	var n int
	_, err := fmt.Sscanf(label, "work[%d]", &n)
	require.NoError(t, err, label)
	return n
}

func checkMetrics(t *testing.T, exName string, tel *telemetry) {
	m := tel.metrics(t)
	ex := attribute.String("flowline.executor", exName)
	task := attribute.String("cicd.pipeline.task.name", "work")
	assert.Equal(t, int64(manyTasks), sum(t, m["flowline.attempts"], ex, task, attribute.String("flowline.attempt.result", "success")))
	assert.Equal(t, int64(manyTasks), sum(t, m["flowline.attempts"]), "no other attempt")
	n, _ := count(t, m["flowline.attempt.queued.duration"], ex, task)
	assert.Equal(t, uint64(manyTasks), n, "every attempt's time queued")
	n, _ = count(t, m["flowline.attempt.running.duration"], ex, task)
	assert.Equal(t, uint64(manyTasks), n, "every attempt's time running")
	n, _ = count(t, m["flowline.task.run.duration"], attribute.String("cicd.pipeline.task.run.result", "success"))
	assert.Equal(t, uint64(manyTasks+1), n, "the children and the mapped node")
	n, _ = count(t, m["flowline.flow.run.duration"], attribute.String("cicd.pipeline.name", "many"),
		attribute.String("cicd.pipeline.result", "success"))
	assert.Equal(t, uint64(1), n)

	assert.Equal(t, int64(manyTasks), sum(t, m["flowline.executor.calls.submitted"], ex))
	assert.Equal(t, int64(manyTasks), sum(t, m["flowline.executor.calls.ended"], ex, attribute.String("flowline.call.outcome", "success")))
	assert.Equal(t, int64(manyTasks), sum(t, m["flowline.executor.calls.ended"], ex))
	assert.Equal(t, int64(0), sum(t, m["flowline.executor.calls.timed_out"], ex))
	assert.Equal(t, int64(0), sum(t, m["flowline.executor.calls.running"], ex))
	assert.Equal(t, int64(0), sum(t, m["flowline.executor.calls.abandoned"], ex))
	assert.Equal(t, int64(0), sum(t, m["flowline.executor.queue.depth"], ex))
}
