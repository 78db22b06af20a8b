package timeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
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

// TestSVGIsReadable checks what makes the picture readable, on a run with
// a soft timeout retried after a backoff on another lane, and attempts too
// short to hold their own label: a title, a label for every attempt, a bar
// at least 3px wide, the wait drawn and linked, the abandoned tail.
func TestSVGIsReadable(t *testing.T) {
	soft := &executor.TimeoutError{Task: "fetch", Limit: 100 * time.Millisecond, Enforcement: executor.Soft}
	hard := &executor.TimeoutError{Task: "kill", Limit: 10 * time.Millisecond, Enforcement: executor.Hard, Stopped: true}
	results := []task.Result{
		{Task: "fetch", Attempts: []task.Attempt{
			{N: 1, Start: at(0), End: at(100), Err: soft, Worker: "pool/0"},
			{N: 2, Start: at(150), End: at(151), Worker: "pool/1"}, // after a 50ms backoff, elsewhere
		}},
		{Task: "kill", Attempts: []task.Attempt{{N: 1, Start: at(0), End: at(10), Err: hard, Worker: "pool/1"}}},
	}
	for i := range 5 { // five instant attempts, back to back
		results = append(results, task.Result{Task: "tiny[" + string(rune('0'+i)) + "]",
			Attempts: []task.Attempt{{N: 1, Start: at(151), End: at(151), Worker: "pool/1"}}})
	}
	tl := timeline.FromResults(results)
	tl.Flow, tl.Run, tl.Executor = "etl", "r1", "pool, 2 workers"
	require.Len(t, tl.Waits, 1)
	assert.Equal(t, timeline.Wait{Task: "fetch", Attempt: 2, From: 100 * time.Millisecond, To: 150 * time.Millisecond}, tl.Waits[0])
	assert.True(t, tl.Lanes[0].Slices[0].Abandoned, "a soft timeout whose work was not known to stop")
	assert.False(t, tl.Lanes[1].Slices[0].Abandoned, "a hard timeout stopped its work")

	var buf bytes.Buffer
	require.NoError(t, tl.WriteSVG(&buf))
	assertWellFormedXML(t, buf.Bytes())
	doc := parseSVG(t, buf.Bytes())

	assert.Equal(t, []string{"flow etl · run r1 · on pool, 2 workers · 151ms total, 8 attempts on 2 lanes"}, doc.texts["title"])
	labels := doc.texts["label"]
	for _, want := range []string{"fetch", "fetch #2", "kill", "tiny[0]", "tiny[1]", "tiny[2]", "tiny[3]", "tiny[4]"} {
		assert.Contains(t, labels, want, "every attempt is labelled, on its bar or beside it")
	}
	assert.Len(t, doc.groups["attempt"], 8)
	for _, w := range doc.barWidths {
		assert.GreaterOrEqual(t, w, 3.0, "an instant attempt is still seen")
	}
	require.Len(t, doc.groups["wait"], 1, "the backoff before fetch #2 is drawn")
	assert.Contains(t, doc.groups["wait"][0], "fetch waited 50ms before attempt 2")
	assert.Contains(t, buf.String(), `marker-end="url(#arrow)"`, "linked to the attempt before")
	assert.Len(t, doc.groups["abandoned"], 1, "one abandoned tail: the soft timeout's")
	assert.Contains(t, buf.String(), "abandoned: told to stop, may still run", "and the legend says what it is")
	assert.Positive(t, doc.height)

	// Labels beside bars never overlap: the five instants stack in rows.
	assert.GreaterOrEqual(t, doc.rowsOfLabels("tiny"), 5)
}

func TestFromRunTitles(t *testing.T) {
	assert.Empty(t, timeline.FromRun(nil).Lanes)
	var buf bytes.Buffer
	require.NoError(t, timeline.FromRun(nil).WriteSVG(&buf))
	assert.Contains(t, buf.String(), "no attempt started")
	assertWellFormedXML(t, buf.Bytes())
}

// svgDoc is what the tests read back from an SVG: text by class, the
// titles of groups by class, bar widths and the label rows.
type svgDoc struct {
	texts     map[string][]string
	groups    map[string][]string
	barWidths []float64
	labelY    map[string]float64
	height    float64
}

func parseSVG(t *testing.T, data []byte) svgDoc {
	t.Helper()
	doc := svgDoc{texts: map[string][]string{}, groups: map[string][]string{}, labelY: map[string]float64{}}
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []string // the class of each open <g>
	var inText, inTitle string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return doc
		}
		require.NoError(t, err)
		switch e := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range e.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch e.Name.Local {
			case "svg":
				fmt.Sscan(attr["height"], &doc.height)
			case "g":
				stack = append(stack, attr["class"])
			case "title":
				if len(stack) > 0 {
					inTitle = stack[len(stack)-1]
				}
			case "text":
				inText = attr["class"]
				if inText == "label" {
					inText = "label:" + attr["y"]
				}
			case "rect":
				if len(stack) > 0 && stack[len(stack)-1] == "attempt" && attr["fill"] != "" && !strings.HasPrefix(attr["fill"], "url(") {
					var w float64
					fmt.Sscan(attr["width"], &w)
					doc.barWidths = append(doc.barWidths, w)
				}
			}
		case xml.EndElement:
			switch e.Name.Local {
			case "g":
				if c := stack[len(stack)-1]; c == "abandoned" {
					doc.groups[c] = append(doc.groups[c], "")
				}
				stack = stack[:len(stack)-1]
			case "title":
				inTitle = ""
			case "text":
				inText = ""
			}
		case xml.CharData:
			if inTitle != "" {
				doc.groups[inTitle] = append(doc.groups[inTitle], string(e))
			}
			if y, ok := strings.CutPrefix(inText, "label:"); ok {
				doc.texts["label"] = append(doc.texts["label"], string(e))
				var v float64
				fmt.Sscan(y, &v)
				doc.labelY[string(e)] = v
			} else if inText != "" {
				doc.texts[inText] = append(doc.texts[inText], string(e))
			}
		}
	}
}

// rowsOfLabels counts the distinct rows of the labels that start with
// prefix.
func (d svgDoc) rowsOfLabels(prefix string) int {
	ys := map[float64]bool{}
	for text, y := range d.labelY {
		if strings.HasPrefix(text, prefix) {
			ys[y] = true
		}
	}
	return len(ys)
}
