package flow_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// The scheduling overhead with empty tasks on the local executor, per
// task. The bench/flow module compares it with go-taskflow, on other
// executors too.

var empty = task.New("empty", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil }, task.Options{})

func layered(layers, width, deps int) *flow.Flow {
	b := flow.New("layered", flow.Options{})
	var prev []*flow.Node[struct{}]
	for l := range layers {
		cur := make([]*flow.Node[struct{}], width)
		for w := range width {
			n := flow.Add(b, empty, nil).Named(fmt.Sprintf("t%d.%d", l, w))
			for d := range min(deps, len(prev)) {
				n.After(prev[(w+d)%len(prev)])
			}
			cur[w] = n
		}
		prev = cur
	}
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	return f
}

func benchFlow(b *testing.B, f *flow.Flow) {
	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	benchOn(b, f, ex)
}

func benchPool(b *testing.B, f *flow.Flow) {
	ex := pool.New(pool.Options{Workers: 2})
	defer ex.Shutdown(context.Background())
	benchOn(b, f, ex)
}

func benchOn(b *testing.B, f *flow.Flow, ex executor.TimeoutHandler) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.Run(context.Background(), ex, flow.RunOptions{RunID: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*f.Len()), "ns/task")
}

func BenchmarkChain512(b *testing.B)       { benchFlow(b, layered(512, 1, 1)) }
func BenchmarkFanOut512(b *testing.B)      { benchFlow(b, layered(3, 512, 512)) }
func BenchmarkLayers100x1000(b *testing.B) { benchFlow(b, layered(100, 1000, 2)) }

func BenchmarkPoolChain512(b *testing.B)       { benchPool(b, layered(512, 1, 1)) }
func BenchmarkPoolFanOut512(b *testing.B)      { benchPool(b, layered(3, 512, 512)) }
func BenchmarkPoolLayers100x1000(b *testing.B) { benchPool(b, layered(100, 1000, 2)) }
