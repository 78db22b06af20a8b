package flow_test

import (
	"context"
	"testing"

	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/observe"
)

// BenchmarkAttemptNopObserver is BenchmarkAttemptNoObserver/local with an
// observer that does nothing: the cost of the events themselves (their
// structs and the trace-context plumbing) when someone listens.
func BenchmarkAttemptNopObserver(b *testing.B) {
	f := hookFlow(b)
	e := local.New(local.Options{})
	defer e.Shutdown(context.Background())
	runHookFlow(b, f, e, flow.RunOptions{Observer: observe.Nop{}})
}
