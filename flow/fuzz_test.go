package flow_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// FuzzBuild builds random graphs from the fuzzer's bytes: data edges
// (always to earlier nodes, through Collect) and ordering edges (After, in
// any direction, so they can close cycles). Build must find every cycle,
// and name a real one; every flow it accepts must run each task exactly
// once, each after all of its upstream tasks, on a sequential and on a
// concurrent executor.
func FuzzBuild(f *testing.F) {
	f.Add([]byte{4, 0, 1, 1, 2, 2, 3})
	f.Add([]byte{3, 0, 1, 1, 2, 2, 0})
	f.Add([]byte{5, 0x80, 1, 0x81, 2, 4, 4})
	f.Add([]byte{8, 0x83, 5, 0x82, 7, 1, 6, 6, 1, 0x80, 3})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		n := 1 + int(data[0])%24
		data = data[1:]
		up := make([]map[int]bool, n) // up[v][u]: u is an upstream of v
		dataUp := make([][]int, n)
		var after [][2]int
		for i := 0; i+1 < len(data) && i < 120; i += 2 {
			u, v := int(data[i]&0x7f)%n, int(data[i+1])%n
			if up[v] == nil {
				up[v] = map[int]bool{}
			}
			if data[i]&0x80 != 0 && u < v { // a data edge
				dataUp[v] = append(dataUp[v], u)
			} else {
				after = append(after, [2]int{u, v})
			}
			up[v][u] = true
		}

		var (
			mu     sync.Mutex
			seq    atomic.Int64
			starts = make([]int64, n)
			ends   = make([]int64, n)
			calls  = make([]int, n)
		)
		b := flow.New("fuzz", flow.Options{})
		nodes := make([]*flow.Node[int], n)
		for v := range n {
			tk := task.New(fmt.Sprintf("t%d", v), func(ctx context.Context, in []int) (int, error) {
				s := seq.Add(1)
				mu.Lock()
				calls[v]++
				starts[v] = s
				mu.Unlock()
				sum := v
				for _, x := range in {
					sum += x
				}
				mu.Lock()
				ends[v] = seq.Add(1)
				mu.Unlock()
				return sum, nil
			}, task.Options{})
			var ins []flow.Input[int]
			for _, u := range dataUp[v] {
				ins = append(ins, nodes[u])
			}
			nodes[v] = flow.Add(b, tk, flow.Collect(ins...))
		}
		for _, e := range after {
			nodes[e[1]].After(nodes[e[0]])
		}

		fl, err := b.Build()
		if hasCycle(up) {
			require.ErrorIs(t, err, flow.ErrCycle)
			var be *flow.BuildError
			require.ErrorAs(t, err, &be)
			path := be.Tasks
			require.GreaterOrEqual(t, len(path), 2)
			assert.Equal(t, path[0], path[len(path)-1])
			for k := 0; k+1 < len(path); k++ {
				var a, c int
				_, _ = fmt.Sscanf(path[k], "t%d", &a)
				_, _ = fmt.Sscanf(path[k+1], "t%d", &c)
				assert.True(t, up[c][a], "%s -> %s is an edge of the graph", path[k], path[k+1])
			}
			return
		}
		require.NoError(t, err)

		for _, ex := range []executor.TimeoutHandler{newLocal(t), newTestPool(t, 3, 2)} {
			seq.Store(0)
			clear(calls)
			res, err := fl.Run(context.Background(), ex, flow.RunOptions{})
			require.NoError(t, err)
			require.Len(t, res.Tasks, n)
			for v := range n {
				assert.Equal(t, 1, calls[v], "t%d runs exactly once", v)
				for u := range up[v] {
					if u != v {
						assert.Less(t, ends[u], starts[v], "t%d starts after its upstream t%d ended", v, u)
					}
				}
			}
		}
	})
}

// hasCycle reports whether the graph has a cycle, by depth-first search.
func hasCycle(up []map[int]bool) bool {
	color := make([]int, len(up)) // 0 new, 1 on the stack, 2 done
	var visit func(v int) bool
	visit = func(v int) bool {
		color[v] = 1
		for u := range up[v] {
			if color[u] == 1 || (color[u] == 0 && visit(u)) {
				return true
			}
		}
		color[v] = 2
		return false
	}
	for v := range up {
		if color[v] == 0 && visit(v) {
			return true
		}
	}
	return false
}
