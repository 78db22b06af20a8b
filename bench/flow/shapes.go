package main

import (
	"context"
	"fmt"

	gtf "github.com/noneback/go-taskflow"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// shape is a DAG: node i's upstream nodes are deps[i], all < i.
type shape struct {
	name string
	deps [][]int32
}

func (s shape) tasks() int { return len(s.deps) }

func chain(n int) shape {
	deps := make([][]int32, n)
	for i := 1; i < n; i++ {
		deps[i] = []int32{int32(i - 1)}
	}
	return shape{fmt.Sprintf("chain %d", n), deps}
}

// fanOutIn is one root, width tasks after it, and one task after them all.
func fanOutIn(width int) shape {
	deps := make([][]int32, width+2)
	all := make([]int32, width)
	for i := 1; i <= width; i++ {
		deps[i] = []int32{0}
		all[i-1] = int32(i)
	}
	deps[width+1] = all
	return shape{fmt.Sprintf("fan-out/in %d", width), deps}
}

// lattice is a side x side grid where (r, c) follows (r-1, c) and
// (r, c-1): a diamond of parallelism that widens, then narrows.
func lattice(side int) shape {
	deps := make([][]int32, side*side)
	for r := range side {
		for c := range side {
			var d []int32
			if r > 0 {
				d = append(d, int32((r-1)*side+c))
			}
			if c > 0 {
				d = append(d, int32(r*side+c-1))
			}
			deps[r*side+c] = d
		}
	}
	return shape{fmt.Sprintf("lattice %dx%d", side, side), deps}
}

// layers is layers x width tasks, each after 2 tasks of the layer before.
func layers(layers, width int) shape {
	deps := make([][]int32, layers*width)
	for l := 1; l < layers; l++ {
		for w := range width {
			prev := int32((l - 1) * width)
			deps[l*width+w] = []int32{prev + int32(w), prev + int32((w+1)%width)}
		}
	}
	return shape{fmt.Sprintf("layers %dx%d", layers, width), deps}
}

var empty = task.New("empty", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil }, task.Options{})

func buildFlow(s shape) *flow.Flow {
	b := flow.New(s.name, flow.Options{})
	nodes := make([]*flow.Node[struct{}], len(s.deps))
	ups := make([]flow.AnyNode, 0, 8)
	for i, deps := range s.deps {
		n := flow.Add(b, empty, nil).Named(fmt.Sprintf("t%d", i))
		ups = ups[:0]
		for _, d := range deps {
			ups = append(ups, nodes[d])
		}
		n.After(ups...)
		nodes[i] = n
	}
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	return f
}

func buildTaskflow(s shape) *gtf.TaskFlow {
	tf := gtf.NewTaskFlow(s.name)
	tasks := make([]*gtf.Task, len(s.deps))
	for i, deps := range s.deps {
		t := tf.NewTask(fmt.Sprintf("t%d", i), func() {})
		for _, d := range deps {
			tasks[d].Precede(t)
		}
		tasks[i] = t
	}
	return tf
}
