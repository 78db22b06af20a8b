package timeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/task"
	"github.com/flowline-go/flowline/timeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// sample is a small run: a retried timeout, a failure, a skip, and two
// attempts that overlap on one lane.
func sample() []task.Result {
	return []task.Result{
		{Task: "extract", Attempts: []task.Attempt{
			{N: 1, Start: at(0), End: at(100), Err: &executor.TimeoutError{Task: "extract", Limit: 100 * time.Millisecond}, Worker: "pool/1"},
			{N: 2, Start: at(150), End: at(220), Worker: "pool/2"},
		}},
		{Task: "transform[0]", Attempts: []task.Attempt{{N: 1, Start: at(220), End: at(300), Worker: "pool/10"}}},
		{Task: "transform[1]", Attempts: []task.Attempt{{N: 1, Start: at(230), End: at(260), Err: errors.New("bad <row>"), Worker: "pool/2"}}},
		{Task: "transform[2]", Attempts: []task.Attempt{{N: 1, Start: at(240), End: at(250), Err: task.Skip("empty"), Worker: "pool/2"}}},
		{Task: "load", Attempts: []task.Attempt{{N: 1, Start: at(300), End: at(400)}}},
		{Task: "never", State: task.TriggerFailed}, // no attempts: not drawn
	}
}

func TestFromResults(t *testing.T) {
	tl := timeline.FromResults(sample())
	assert.Equal(t, at(0), tl.Origin)
	assert.Equal(t, 400*time.Millisecond, tl.Span)
	var names []string
	for _, l := range tl.Lanes {
		names = append(names, l.Name)
	}
	assert.Equal(t, []string{timeline.DefaultLane, "pool/1", "pool/2", "pool/10"}, names, "lanes in natural order")

	pool2 := tl.Lanes[2]
	require.Len(t, pool2.Slices, 3)
	assert.Equal(t, 2, pool2.Rows, "two attempts overlap on pool/2")
	assert.Equal(t, []int{0, 0, 1}, []int{pool2.Slices[0].Row, pool2.Slices[1].Row, pool2.Slices[2].Row})
	assert.Equal(t, timeline.Succeeded, pool2.Slices[0].Outcome)
	assert.Equal(t, timeline.Failed, pool2.Slices[1].Outcome)
	assert.Equal(t, timeline.Skipped, pool2.Slices[2].Outcome)
	assert.Equal(t, "bad <row>", pool2.Slices[1].Error)

	pool1 := tl.Lanes[1]
	assert.Equal(t, timeline.TimedOut, pool1.Slices[0].Outcome)
	assert.Equal(t, 100*time.Millisecond, pool1.Slices[0].End)
}

func TestOutcomeOf(t *testing.T) {
	ctx := executor.NewCanceledError("x", canceled())
	for err, want := range map[error]timeline.Outcome{
		nil:                        timeline.Succeeded,
		errors.New("x"):            timeline.Failed,
		&executor.PanicError{}:     timeline.Failed,
		&executor.TimeoutError{}:   timeline.TimedOut,
		task.Skip("x"):             timeline.Skipped,
		ctx:                        timeline.Cancelled,
		task.Fail(errors.New("x")): timeline.Failed,
	} {
		assert.Equal(t, want, timeline.OutcomeOf(err), "%v", err)
	}
}

func TestUnendedAndEmpty(t *testing.T) {
	tl := timeline.FromResults([]task.Result{{Task: "a", Attempts: []task.Attempt{
		{N: 1, Start: at(0), End: at(50)}, {N: 2, Start: at(60)},
	}}})
	require.Len(t, tl.Lanes, 1)
	last := tl.Lanes[0].Slices[1]
	assert.Equal(t, timeline.Unended, last.Outcome)
	assert.Equal(t, tl.Span, last.End)

	empty := timeline.FromResults(nil)
	assert.Empty(t, empty.Lanes)
	var svg, trace bytes.Buffer
	require.NoError(t, empty.WriteSVG(&svg))
	require.NoError(t, empty.WriteTrace(&trace))
	assertWellFormedXML(t, svg.Bytes())
	assert.True(t, json.Valid(trace.Bytes()))
}

func TestWriteTrace(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, timeline.FromResults(sample()).WriteTrace(&buf))
	var doc struct {
		TraceEvents []struct {
			Name  string         `json:"name"`
			Ph    string         `json:"ph"`
			Ts    float64        `json:"ts"`
			Dur   float64        `json:"dur"`
			Tid   int            `json:"tid"`
			Cname string         `json:"cname"`
			Args  map[string]any `json:"args"`
		} `json:"traceEvents"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
	threads := map[int]string{}
	slices := map[string]int{}
	for _, e := range doc.TraceEvents {
		switch {
		case e.Ph == "M" && e.Name == "thread_name":
			threads[e.Tid] = e.Args["name"].(string)
		case e.Ph == "X":
			slices[e.Name] = e.Tid
			if e.Name == "extract" {
				assert.Equal(t, 0.0, e.Ts)
				assert.Equal(t, 100000.0, e.Dur, "microseconds")
				assert.Equal(t, "bad", e.Cname)
				assert.Equal(t, "timed out", e.Args["outcome"])
				assert.Contains(t, e.Args["error"], "timed out")
			}
		}
	}
	assert.Len(t, slices, 6)
	assert.Equal(t, "pool/2", threads[slices["extract #2"]])
	assert.Equal(t, "pool/2 (2)", threads[slices["transform[2]"]], "an overlapping attempt gets a row of its own")
	assert.Equal(t, timeline.DefaultLane, threads[slices["load"]])
}

func TestWriteSVG(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, timeline.FromResults(sample()).WriteSVG(&buf))
	svg := buf.String()
	assertWellFormedXML(t, buf.Bytes())
	for _, want := range []string{
		">pool/10<", ">pool/2<", ">caller<", // lane labels
		">extract #2<", ">load<", // bar labels
		"#ef8f1f", "#c62828", "#a8a8a8", "#2e9e44", // outcome colours
		"bad &lt;row&gt;",        // escaped error text in a tooltip
		">timed out<", ">100ms<", // legend and axis
	} {
		assert.Contains(t, svg, want)
	}
	assert.NotContains(t, svg, "<row>", "text is escaped")
}

func assertWellFormedXML(t *testing.T, data []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			return
		}
		require.NoError(t, err, "the SVG is not well-formed XML")
	}
}

func TestLongNamesAreClipped(t *testing.T) {
	long := strings.Repeat("x", 200)
	var buf bytes.Buffer
	require.NoError(t, timeline.FromResults([]task.Result{{Task: long, Attempts: []task.Attempt{
		{N: 1, Start: at(0), End: at(10), Worker: long},
	}}}).WriteSVG(&buf))
	assert.Contains(t, buf.String(), "…")
	assertWellFormedXML(t, buf.Bytes())
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
