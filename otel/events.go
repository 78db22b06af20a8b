package otel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/observe"
)

// result folds a flowline state (and the error class, for failures) into
// the CICD conventions' result values: success, failure, error, timeout,
// cancellation, skip. A failure of flowline's own making (a worker crash,
// a bad input or output, an unknown task) is "error", the convention's
// "failed due to an error in the CI/CD system".
func result(state, class string) string {
	switch state {
	case "Success", "Cached":
		return "success"
	case "TimedOut":
		return "timeout"
	case "Cancelled":
		return "cancellation"
	case "Skipped", "TriggerFailed":
		return "skip"
	case "Failed":
		if systemClass(class) {
			return "error"
		}
		return "failure"
	}
	return "failure"
}

func systemClass(class string) bool {
	switch executor.Class(class) {
	case executor.ClassCrash, executor.ClassBadInput, executor.ClassBadOutput, executor.ClassUnknownTask:
		return true
	}
	return false
}

// attemptResult is an attempt's result, from its error class.
func attemptResult(class string) string {
	switch executor.Class(class) {
	case "":
		return "success"
	case executor.ClassTimeout:
		return "timeout"
	case executor.ClassCanceled:
		return "cancellation"
	case executor.ClassSkip:
		return "skip"
	}
	if systemClass(class) {
		return "error"
	}
	return "failure"
}

// failed reports whether a result is a failure, for span status and
// error.type.
func failed(res string) bool { return res == "failure" || res == "error" || res == "timeout" }

func end(span trace.Span, res, class string, err error, t time.Time) {
	if failed(res) {
		if class == "" {
			class = string(executor.ClassFailure)
		}
		span.SetAttributes(KeyErrorType.String(class))
		msg := res
		if err != nil {
			msg = err.Error()
		}
		span.SetStatus(codes.Error, msg)
	}
	span.End(trace.WithTimestamp(t))
}

// parent returns a context holding span, for starting its children.
func parent(span trace.Span) context.Context {
	return trace.ContextWithSpan(context.Background(), span)
}

// inject returns the W3C trace context of ctx's span.
func (o *Observer) inject(ctx context.Context) (traceParent, traceState string) {
	c := propagation.MapCarrier{}
	o.prop.Inject(ctx, c)
	return c["traceparent"], c["tracestate"]
}

// extract returns ctx with the remote span context of a W3C trace
// context, or ctx unchanged if traceParent is empty or invalid.
func (o *Observer) extract(ctx context.Context, traceParent, traceState string) context.Context {
	if traceParent == "" {
		return ctx
	}
	return o.prop.Extract(ctx, propagation.MapCarrier{"traceparent": traceParent, "tracestate": traceState})
}

// FlowStart starts the flow run's span: a child of the recorded trace
// context for a resumed run, else of ctx's span, if any.
func (o *Observer) FlowStart(ctx context.Context, f *observe.FlowRun) {
	if f.TraceParent != "" {
		if p := o.extract(context.Background(), f.TraceParent, f.TraceState); trace.SpanContextFromContext(p).IsValid() {
			ctx = p
		}
	}
	_, span := o.tracer.Start(ctx, "RUN "+f.Flow, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(f.Start), trace.WithAttributes(
			KeyPipelineName.String(f.Flow), KeyPipelineRunID.String(f.RunID), KeyPipelineAction.String("RUN"),
			KeyResumed.Bool(f.Resumed)))
	f.Data = span
	f.TraceParent, f.TraceState = o.inject(parent(span))
}

// FlowEnd ends the flow run's span and records its duration.
func (o *Observer) FlowEnd(f *observe.FlowRun) {
	span, ok := f.Data.(trace.Span)
	if !ok {
		return
	}
	class := ""
	if f.Err != nil {
		class = string(executor.ClassOf(f.Err))
	}
	res := result(f.State, class)
	span.SetAttributes(KeyPipelineResult.String(res), KeyState.String(f.State))
	end(span, res, class, f.Err, f.End)
	attrs := []attribute.KeyValue{KeyPipelineName.String(f.Flow), KeyPipelineResult.String(res)}
	o.flowDur.Record(context.Background(), f.End.Sub(f.Start).Seconds(), metric.WithAttributes(attrs...))
}

// TaskStart starts the task run's span, a child of its mapped node's or
// its flow run's (a root outside a flow).
func (o *Observer) TaskStart(t *observe.TaskRun) {
	ctx := context.Background()
	switch {
	case t.Parent != nil:
		if s, ok := t.Parent.Data.(trace.Span); ok {
			ctx = parent(s)
		}
	case t.Flow != nil:
		if s, ok := t.Flow.Data.(trace.Span); ok {
			ctx = parent(s)
		}
	}
	attrs := []attribute.KeyValue{KeyTaskName.String(t.Task), KeyTaskRunID.String(t.RunID), KeyLabel.String(t.Label)}
	if t.Flow != nil {
		attrs = append(attrs, KeyPipelineName.String(t.Flow.Flow), KeyPipelineRunID.String(t.Flow.RunID))
	}
	if t.Mapped {
		attrs = append(attrs, KeyMapped.Bool(true))
	}
	if t.Executor != "" {
		attrs = append(attrs, KeyExecutor.String(t.Executor))
	}
	_, span := o.tracer.Start(ctx, t.Task, trace.WithTimestamp(t.Start), trace.WithAttributes(attrs...))
	t.Data = span
}

// TaskEnd ends the task run's span and records its duration.
func (o *Observer) TaskEnd(t *observe.TaskRun) {
	span, ok := t.Data.(trace.Span)
	if !ok {
		return
	}
	res := result(t.State, t.Class)
	span.SetAttributes(KeyTaskRunResult.String(res), KeyState.String(t.State), KeyAttempts.Int(t.Attempts))
	if t.Mapped {
		span.SetAttributes(KeyChildren.Int(t.Children))
	}
	end(span, res, t.Class, t.Err, t.End)
	flowName := ""
	if t.Flow != nil {
		flowName = t.Flow.Flow
	}
	o.taskDur.Record(context.Background(), t.End.Sub(t.Start).Seconds(), metric.WithAttributes(
		KeyPipelineName.String(flowName), KeyTaskName.String(t.Task), KeyTaskRunResult.String(res)))
}

// AttemptStart starts the attempt's span, a child of its task run's, and
// gives the attempt its trace context.
func (o *Observer) AttemptStart(a *observe.Attempt) {
	ctx := context.Background()
	if s, ok := a.Task.Data.(trace.Span); ok {
		ctx = parent(s)
	}
	ctx, span := o.tracer.Start(ctx, a.Task.Task+" attempt", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(a.Start), trace.WithAttributes(
			KeyTaskName.String(a.Task.Task), KeyTaskRunID.String(a.Task.RunID), KeyAttempt.Int(a.N),
			KeyExecutor.String(a.Task.Executor)))
	a.Data = span
	a.TraceParent, a.TraceState = o.inject(ctx)
}

// AttemptEnd ends the attempt's span and records its counts and times.
func (o *Observer) AttemptEnd(a *observe.Attempt) {
	span, ok := a.Data.(trace.Span)
	if !ok {
		return
	}
	res := attemptResult(a.Class)
	span.SetAttributes(KeyAttemptRes.String(res), KeyRetry.Bool(a.Retry))
	if a.Worker != "" {
		span.SetAttributes(KeyWorker.String(a.Worker))
	}
	if a.Deliveries > 0 {
		span.SetAttributes(KeyDeliveries.Int(a.Deliveries))
	}
	if a.TimedOut {
		span.SetAttributes(KeyEnforcement.String(a.Enforcement), KeyStopped.Bool(a.Stopped), KeyAbandoned.Bool(a.Abandoned))
	}
	if !a.Started.IsZero() {
		span.AddEvent("started", trace.WithTimestamp(a.Started))
	}
	end(span, res, a.Class, a.Err, a.End)
	ctx := context.Background()
	task, ex := KeyTaskName.String(a.Task.Task), KeyExecutor.String(a.Task.Executor)
	o.attempts.Add(ctx, 1, metric.WithAttributes(ex, task, KeyAttemptRes.String(res)))
	if !a.Started.IsZero() {
		o.queued.Record(ctx, a.Queued.Seconds(), metric.WithAttributes(ex, task))
		o.running.Record(ctx, a.Running.Seconds(), metric.WithAttributes(ex, task, KeyAttemptRes.String(res)))
	}
}

// WorkerStart starts, in a worker process, a span for the call that is a
// child of the caller's attempt span, and returns ctx with it, so that
// the task's own spans (trace.SpanFromContext) are its children.
func (o *Observer) WorkerStart(ctx context.Context, c *observe.WorkerCall) context.Context {
	ctx = o.extract(ctx, c.TraceParent, c.TraceState)
	ctx, span := o.tracer.Start(ctx, c.Task+" worker", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(c.Start), trace.WithAttributes(
			KeyTaskName.String(c.Task), KeyTaskRunID.String(c.RunID), KeyAttempt.Int(c.Attempt),
			KeyWorker.String(c.Worker)))
	c.Data = span
	c.TraceParent, c.TraceState = o.inject(ctx)
	return ctx
}

// WorkerEnd ends the worker's span.
func (o *Observer) WorkerEnd(c *observe.WorkerCall) {
	span, ok := c.Data.(trace.Span)
	if !ok {
		return
	}
	res := attemptResult(c.Class)
	span.SetAttributes(KeyAttemptRes.String(res))
	end(span, res, c.Class, c.Err, c.End)
}

// CallContext returns ctx with the span context of the call that ctx
// belongs to (executor.CallInfo's trace context) as its remote parent, so
// that task code can start spans of its own as children of its attempt's
// span. A ctx that already holds a valid span (a worker whose registry has
// an Observer, see WorkerStart) is returned unchanged, as is a ctx outside
// a call or of a call without a trace context.
func CallContext(ctx context.Context) context.Context {
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	id, ok := executor.CallInfo(ctx)
	if !ok || id.TraceParent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": id.TraceParent, "tracestate": id.TraceState})
}

// ObserveExecutor reports ex's Stats as metrics under the name given (the
// flowline.executor attribute; use one name per executor):
// flowline.executor.calls.submitted, flowline.executor.calls.ended (by
// flowline.call.outcome), flowline.executor.calls.timed_out,
// flowline.executor.calls.running, flowline.executor.calls.abandoned and
// flowline.executor.queue.depth. They are read when the meter collects.
// Unregister the returned registration when ex is shut down.
func (o *Observer) ObserveExecutor(name string, ex executor.Executor) (metric.Registration, error) {
	submitted, err1 := o.meter.Int64ObservableCounter("flowline.executor.calls.submitted", metric.WithUnit("{call}"),
		metric.WithDescription("Calls the executor accepted."))
	ended, err2 := o.meter.Int64ObservableCounter("flowline.executor.calls.ended", metric.WithUnit("{call}"),
		metric.WithDescription("Calls the executor answered, by outcome: success, failure, timeout, canceled."))
	timedOut, err3 := o.meter.Int64ObservableCounter("flowline.executor.calls.timed_out", metric.WithUnit("{call}"),
		metric.WithDescription("Calls that overran their limit (the timeout outcome of flowline.executor.calls.ended)."))
	running, err4 := o.meter.Int64ObservableUpDownCounter("flowline.executor.calls.running", metric.WithUnit("{call}"),
		metric.WithDescription("Calls running now, abandoned ones included."))
	abandoned, err5 := o.meter.Int64ObservableUpDownCounter("flowline.executor.calls.abandoned", metric.WithUnit("{call}"),
		metric.WithDescription("Calls answered with a soft timeout or cancellation whose work still runs."))
	depth, err6 := o.meter.Int64ObservableGauge("flowline.executor.queue.depth", metric.WithUnit("{call}"),
		metric.WithDescription("Calls accepted and not yet started or answered."))
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return nil, fmt.Errorf("flowline/otel: %w", err)
	}
	exAttr := metric.WithAttributes(KeyExecutor.String(name))
	outcome := func(v string) metric.ObserveOption {
		return metric.WithAttributes(KeyExecutor.String(name), KeyOutcome.String(v))
	}
	return o.meter.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		st := ex.Stats()
		ob.ObserveInt64(submitted, int64(st.Submitted), exAttr)
		ob.ObserveInt64(ended, int64(st.Succeeded), outcome("success"))
		ob.ObserveInt64(ended, int64(st.Failed), outcome("failure"))
		ob.ObserveInt64(ended, int64(st.TimedOut), outcome("timeout"))
		ob.ObserveInt64(ended, int64(st.Canceled), outcome("canceled"))
		ob.ObserveInt64(timedOut, int64(st.TimedOut), exAttr)
		ob.ObserveInt64(running, st.Running, exAttr)
		ob.ObserveInt64(abandoned, st.Abandoned, exAttr)
		ob.ObserveInt64(depth, queueDepth(st), exAttr)
		return nil
	}, submitted, ended, timedOut, running, abandoned, depth)
}

// queueDepth is the calls accepted and neither started nor answered:
// those not ended, less those running that are not abandoned (an
// abandoned call has ended). Stats is not one atomic snapshot, so a
// transient negative is read as zero.
func queueDepth(st executor.Stats) int64 {
	ended := st.Succeeded + st.Failed + st.TimedOut + st.Canceled
	open := int64(st.Submitted) - int64(ended)
	return max(open-(st.Running-st.Abandoned), 0)
}
