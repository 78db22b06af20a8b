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

// shaped builds a flow where node i follows deps[i], as bench/flow's
// shapes do.
func shaped(deps [][]int) *flow.Flow {
	b := flow.New("shaped", flow.Options{})
	nodes := make([]*flow.Node[struct{}], len(deps))
	for i, ds := range deps {
		n := flow.Add(b, empty, nil).Named(fmt.Sprintf("t%d", i))
		for _, d := range ds {
			n.After(nodes[d])
		}
		nodes[i] = n
	}
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	return f
}

// fanOutIn is one root, width tasks after it, and one after them all.
func fanOutIn(width int) *flow.Flow {
	deps := make([][]int, width+2)
	for i := 1; i <= width; i++ {
		deps[i] = []int{0}
		deps[width+1] = append(deps[width+1], i)
	}
	return shaped(deps)
}

// lattice is a side x side grid where (r, c) follows (r-1, c) and (r, c-1).
func lattice(side int) *flow.Flow {
	deps := make([][]int, side*side)
	for r := range side {
		for c := range side {
			if r > 0 {
				deps[r*side+c] = append(deps[r*side+c], (r-1)*side+c)
			}
			if c > 0 {
				deps[r*side+c] = append(deps[r*side+c], r*side+c-1)
			}
		}
	}
	return shaped(deps)
}

func BenchmarkFanOutIn512(b *testing.B)     { benchFlow(b, fanOutIn(512)) }
func BenchmarkLattice32(b *testing.B)       { benchFlow(b, lattice(32)) }
func BenchmarkPoolFanOutIn512(b *testing.B) { benchPool(b, fanOutIn(512)) }
func BenchmarkPoolLattice32(b *testing.B)   { benchPool(b, lattice(32)) }

func BenchmarkChain512(b *testing.B)       { benchFlow(b, layered(512, 1, 1)) }
func BenchmarkFanOut512(b *testing.B)      { benchFlow(b, layered(3, 512, 512)) }
func BenchmarkLayers100x1000(b *testing.B) { benchFlow(b, layered(100, 1000, 2)) }

func BenchmarkPoolChain512(b *testing.B)       { benchPool(b, layered(512, 1, 1)) }
func BenchmarkPoolFanOut512(b *testing.B)      { benchPool(b, layered(3, 512, 512)) }
func BenchmarkPoolLayers100x1000(b *testing.B) { benchPool(b, layered(100, 1000, 2)) }
