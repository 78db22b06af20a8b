// Package otel reports flowline's runs to OpenTelemetry: a span per flow
// run, task run and attempt, a span in the worker process for an attempt
// that a subprocess or cluster worker ran, and metrics of runs, attempts
// and executors. It implements the core's observe.Observer; it lives in a
// nested module of its own so that the library's go.mod carries no
// OpenTelemetry dependency.
//
// Pick it when your service already exports OpenTelemetry traces or
// metrics (to an OTLP collector, to Prometheus through
// go.opentelemetry.io/otel/exporters/prometheus): make one Observer, give
// it to flow.RunOptions.Observer, register your executors with
// ObserveExecutor, and in worker processes give it to the registry they
// serve (executor.Registry.SetObserver) so that their spans join the
// caller's trace. docs/observability.md shows a trace and every metric.
//
// Span names and attributes follow OpenTelemetry's CICD semantic
// conventions where they fit: a flow run is a pipeline run ("RUN <flow>",
// kind server, cicd.pipeline.name, cicd.pipeline.run.id,
// cicd.pipeline.result), a task run a pipeline task run (cicd.pipeline.task.name,
// cicd.pipeline.task.run.id, cicd.pipeline.task.run.result), with
// error.type (flowline's error class: "failure", "timeout", "panic",
// "crash", ...) on failures, and flowline.* attributes for what the
// conventions do not cover (attempt, enforcement, stopped, abandoned).
// Run ids go on spans only, never on metrics, to keep their cardinality
// low.
package otel

import (
	"errors"
	"fmt"

	global "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowline-go/flowline/observe"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/flowline-go/flowline/otel"

// Attribute keys. The cicd.* ones are OpenTelemetry's CICD semantic
// conventions; the flowline.* ones are this package's.
const (
	KeyPipelineName   = attribute.Key("cicd.pipeline.name")
	KeyPipelineRunID  = attribute.Key("cicd.pipeline.run.id")
	KeyPipelineResult = attribute.Key("cicd.pipeline.result")
	KeyPipelineAction = attribute.Key("cicd.pipeline.action.name")
	KeyTaskName       = attribute.Key("cicd.pipeline.task.name")
	KeyTaskRunID      = attribute.Key("cicd.pipeline.task.run.id")
	KeyTaskRunResult  = attribute.Key("cicd.pipeline.task.run.result")
	KeyErrorType      = attribute.Key("error.type")

	KeyState       = attribute.Key("flowline.state")       // flowline's final state name, which the CICD result folds
	KeyLabel       = attribute.Key("flowline.task.label")  // "name[i]" for a mapped child
	KeyMapped      = attribute.Key("flowline.task.mapped") // a mapped node
	KeyChildren    = attribute.Key("flowline.task.children")
	KeyAttempts    = attribute.Key("flowline.task.attempts")
	KeyResumed     = attribute.Key("flowline.run.resumed")
	KeyExecutor    = attribute.Key("flowline.executor")
	KeyAttempt     = attribute.Key("flowline.attempt")
	KeyAttemptRes  = attribute.Key("flowline.attempt.result")
	KeyRetry       = attribute.Key("flowline.attempt.retry")
	KeyEnforcement = attribute.Key("flowline.enforcement")
	KeyStopped     = attribute.Key("flowline.stopped")
	KeyAbandoned   = attribute.Key("flowline.abandoned")
	KeyWorker      = attribute.Key("flowline.worker")
	KeyDeliveries  = attribute.Key("flowline.deliveries")
	KeyOutcome     = attribute.Key("flowline.call.outcome")
)

// Options configure an Observer. The zero value uses the global
// providers.
type Options struct {
	// TracerProvider makes the spans. Nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the metrics. Nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// Observer is an observe.Observer that makes spans and records metrics.
// It is safe for concurrent use by any number of runs and workers.
type Observer struct {
	tracer trace.Tracer
	meter  metric.Meter
	prop   propagation.TraceContext

	flowDur, taskDur, queued, running metric.Float64Histogram
	attempts                          metric.Int64Counter
}

var _ observe.Observer = (*Observer)(nil)

// durations are the histograms' bucket bounds, in seconds: from a
// millisecond to an hour, tasks of every size.
var durations = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// New returns an Observer. It fails only if the meter refuses to make an
// instrument.
func New(opts Options) (*Observer, error) {
	tp, mp := opts.TracerProvider, opts.MeterProvider
	if tp == nil {
		tp = global.GetTracerProvider()
	}
	if mp == nil {
		mp = global.GetMeterProvider()
	}
	o := &Observer{tracer: tp.Tracer(ScopeName), meter: mp.Meter(ScopeName)}
	var errs []error
	hist := func(name, desc string) metric.Float64Histogram {
		h, err := o.meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(durations...))
		errs = append(errs, err)
		return h
	}
	o.flowDur = hist("flowline.flow.run.duration", "Duration of flow runs, by flow and result.")
	o.taskDur = hist("flowline.task.run.duration", "Duration of task runs (their attempts and retry delays), by flow, task and result.")
	o.queued = hist("flowline.attempt.queued.duration", "Time an attempt waited in its executor before it started running, by executor and task.")
	o.running = hist("flowline.attempt.running.duration", "Time an attempt ran, from its start in the executor to its answer, by executor, task and result.")
	var err error
	o.attempts, err = o.meter.Int64Counter("flowline.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts that ended, by executor, task and result."))
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, fmt.Errorf("flowline/otel: %w", err)
	}
	return o, nil
}
