package otel_test

import (
	"context"
	"fmt"
	"sort"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/flow"
	flotel "github.com/flowline-go/flowline/otel"
	"github.com/flowline-go/flowline/task"
)

// A flow run traced with OpenTelemetry: a service gives its tracer and
// meter providers (here an in-memory recorder) to New and the Observer to
// the run.
func Example() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	obs, err := flotel.New(flotel.Options{TracerProvider: tp})
	if err != nil {
		panic(err)
	}

	split := task.New("split", func(ctx context.Context, s string) ([]string, error) {
		return strings.Fields(s), nil
	}, task.Options{})
	upper := task.New("upper", func(ctx context.Context, s string) (string, error) {
		return strings.ToUpper(s), nil
	}, task.Options{})
	b := flow.New("shout", flow.Options{})
	flow.Map(b, upper, flow.Add(b, split, flow.Const("hello world")))
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	if _, err := f.Run(context.Background(), ex, flow.RunOptions{Observer: obs, RunID: "r1"}); err != nil {
		panic(err)
	}
	printTree(spans.Ended(), func(s sdktrace.ReadOnlySpan) string {
		for _, kv := range s.Attributes() {
			if kv.Key == "cicd.pipeline.result" || kv.Key == "cicd.pipeline.task.run.result" || kv.Key == "flowline.attempt.result" {
				return kv.Value.AsString()
			}
		}
		return ""
	})
	// Output:
	// RUN shout: success
	//   split: success
	//     split attempt: success
	//   upper: success
	//     upper: success
	//       upper attempt: success
	//     upper: success
	//       upper attempt: success
}

// printTree prints spans as a tree, children in the order they started,
// with what note says of each.
func printTree(spans []sdktrace.ReadOnlySpan, note func(sdktrace.ReadOnlySpan) string) {
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
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		fmt.Printf("%s%s: %s\n", strings.Repeat("  ", depth), s.Name(), note(s))
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
