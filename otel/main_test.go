package otel_test

import (
	"context"
	"os"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/subprocess"
	flotel "github.com/flowline-go/flowline/otel"
	"github.com/flowline-go/flowline/task"
)

// Probe is what the work task reports about the span its context holds,
// so that a test sees what a worker process saw.
type Probe struct {
	N       int
	Trace   string
	Span    string
	Parent  string // the span's parent, when it is a span of the worker's own SDK
	Process int
}

// work logs one line and reports its span: in process the attempt's (by
// flotel.CallContext), in a worker with an observer its worker span.
var work = task.New("work", func(ctx context.Context, n int) (Probe, error) {
	executor.Logger(ctx).Info("ran", "n", n)
	ctx = flotel.CallContext(ctx)
	span := trace.SpanFromContext(ctx)
	p := Probe{N: n, Trace: span.SpanContext().TraceID().String(), Span: span.SpanContext().SpanID().String(),
		Process: os.Getpid()}
	if ro, ok := span.(sdktrace.ReadOnlySpan); ok {
		p.Parent = ro.Parent().SpanID().String()
	}
	return p, nil
}, task.Options{})

func registry() *executor.Registry {
	reg, err := task.NewRegistry(work)
	if err != nil {
		panic(err)
	}
	return reg
}

func TestMain(m *testing.M) {
	if os.Getenv("FLOTEL_TEST_WORKER_OBSERVER") != "" {
		// A worker process of the subprocess tests: its own SDK, whose
		// spans the test learns of through the task's Probe and log lines.
		reg := registry()
		obs, err := flotel.New(flotel.Options{TracerProvider: sdktrace.NewTracerProvider()})
		if err != nil {
			panic(err)
		}
		reg.SetObserver(obs)
		subprocess.ServeIfWorker(reg)
	}
	subprocess.ServeIfWorker(registry())
	goleak.VerifyTestMain(m)
}
