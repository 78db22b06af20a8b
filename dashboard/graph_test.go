package dashboard_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// TestGraphLayout draws a flow with a parameter, a fan-out, a diamond and
// edges that skip layers, and checks the picture: every node once, no two
// boxes overlap, everything inside the picture, one path per edge, the
// ordering-only edge dashed, and the layers left to right.
func TestGraphLayout(t *testing.T) {
	e := newEnv(t)
	inc := task.New("inc", func(_ context.Context, x int) (int, error) { return x + 1, nil }, task.Options{})
	add := task.New("add", func(_ context.Context, p [2]int) (int, error) { return p[0] + p[1], nil }, task.Options{})
	b := flow.New("shape", flow.Options{})
	n := flow.Param[int](b, "n")
	a := flow.Add(b, inc, n).Named("a")
	b1 := flow.Add(b, inc, a).Named("b1")
	b2 := flow.Add(b, inc, a).Named("b2")
	c := flow.Add(b, inc, b1).Named("c")
	pair := func(x, y int) [2]int { return [2]int{x, y} }
	d := flow.Add(b, add, flow.Combine2(c, b2, pair)).Named("d") // b2 -> d skips c's layer
	flow.Add(b, add, flow.Combine2(d, a, pair)).Named("e")       // a -> e skips three layers
	flow.Add(b, inc, n).Named("side").After(b1)                  // ordering only
	f, err := b.Build()
	require.NoError(t, err)
	_, err = f.Run(context.Background(), e.ex, flow.RunOptions{Store: e.st, RunID: "shape-1", Args: []flow.Arg{n.Set(1)}})
	require.NoError(t, err)

	// The handler draws the flows it was given: ask one that has it.
	h := newHandlerWith(t, e, f)
	status, body := get(t, h+"/runs/shape-1/graph.svg")
	require.Equal(t, 200, status, body)

	type box struct{ x, y, w, h float64 }
	var boxes = map[string]box{}
	var width, height float64
	paths, dashed := 0, 0
	dec := xml.NewDecoder(bytes.NewReader([]byte(body)))
	var task string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "well-formed SVG")
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		attr := map[string]string{}
		for _, a := range se.Attr {
			attr[a.Name.Local] = a.Value
		}
		num := func(k string) float64 { v, _ := strconv.ParseFloat(attr[k], 64); return v }
		switch {
		case se.Name.Local == "svg":
			width, height = num("width"), num("height")
		case se.Name.Local == "a":
			task = attr["data-task"]
		case se.Name.Local == "rect" && attr["class"] == "box":
			_, dup := boxes[task]
			assert.False(t, dup, "node %s drawn once", task)
			boxes[task] = box{num("x"), num("y"), num("width"), num("height")}
		case se.Name.Local == "path" && attr["class"] == "edge":
			paths++
			if attr["stroke-dasharray"] != "" {
				dashed++
			}
		}
	}
	assert.Len(t, boxes, 7)
	assert.Equal(t, 10, paths, "8 edges between nodes, 2 from the parameter")
	assert.Equal(t, 1, dashed, "side waits for b1 without its result")
	names := []string{"a", "b1", "b2", "c", "d", "e", "side"}
	for i, p := range names {
		bp := boxes[p]
		assert.True(t, bp.x >= 0 && bp.y >= 0 && bp.x+bp.w <= width && bp.y+bp.h <= height, "%s inside the picture", p)
		for _, q := range names[i+1:] {
			bq := boxes[q]
			overlap := bp.x < bq.x+bq.w && bq.x < bp.x+bp.w && bp.y < bq.y+bq.h && bq.y < bp.y+bp.h
			assert.False(t, overlap, "%s and %s overlap", p, q)
		}
	}
	for _, up := range [][2]string{{"a", "b1"}, {"b1", "c"}, {"c", "d"}, {"d", "e"}, {"b2", "d"}, {"b1", "side"}} {
		assert.Less(t, boxes[up[0]].x, boxes[up[1]].x, "%s is left of %s", up[0], up[1])
	}
}
