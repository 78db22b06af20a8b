package flow_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// etl builds the flow the output tests print: a parameter, a retried
// task, a mapping with a failed child, a refused task, an ordering edge.
func etl(t *testing.T) (*flow.Flow, *flow.Parameter[string]) {
	t.Helper()
	calls := 0
	extract := task.New("extract", func(ctx context.Context, day string) ([]string, error) {
		calls++
		time.Sleep(time.Second)
		if calls == 1 {
			return nil, errors.New("connection reset")
		}
		return []string{"a", "b\"q", "c"}, nil
	}, task.Options{MaxRetries: 1})
	transform := task.New("transform", func(ctx context.Context, s string) (string, error) {
		time.Sleep(2 * time.Second)
		if s == "c" {
			return "", errors.New("bad row\nwith detail")
		}
		return strings.ToUpper(s), nil
	}, task.Options{})
	load := task.New("load", func(ctx context.Context, rows []string) (int, error) { return len(rows), nil }, task.Options{})
	migrate := task.New("migrate", func(ctx context.Context, _ struct{}) (int, error) { return 0, nil }, task.Options{})

	b := flow.New("etl", flow.Options{})
	day := flow.Param[string](b, "day")
	rows := flow.Add(b, extract, day)
	clean := flow.Map(b, transform, rows)
	m := flow.Add(b, migrate, nil)
	flow.Add(b, load, clean).After(m)
	f, err := b.Build()
	require.NoError(t, err)
	return f, day
}

func TestReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, day := etl(t)
		res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{RunID: "run1", Args: []flow.Arg{day.Set("monday")}})
		require.Error(t, err)
		assert.Equal(t, `flow etl: Failed in 8s (run run1)
TASK            STATE          ATTEMPTS  DURATION  ERROR
extract         Success        2         2s        retried after: connection reset
transform       Failed         ×3        6s
    flow: 1 of 3 children of "transform" failed; the first: bad row
    with detail
  transform[0]  Success        1         2s
  transform[1]  Success        1         2s
  transform[2]  Failed         1         2s
      bad row
      with detail
migrate         Success        1         0s
load            TriggerFailed  0         -
    flow: task "load" not run: trigger all-successful refused upstream transform=Failed,
    migrate=Success
7 task runs: 4 Success, 2 Failed, 1 TriggerFailed
`, res.Report())

		var b strings.Builder
		require.NoError(t, res.WriteReport(&b, flow.ReportOptions{OmitTimes: true}))
		assert.True(t, strings.HasPrefix(b.String(), "flow etl: Failed\nTASK            STATE          ATTEMPTS  ERROR\nextract         Success        2         retried after: connection reset\n"), b.String())
	})
}

// TestReportFitsItsWidth fails a task with an error far wider than a
// terminal whose important part is at its end: every line of the report
// fits the width, and the whole error is there, word for word.
func TestReportFitsItsWidth(t *testing.T) {
	long := "told to stop " + strings.Repeat("and may still be running ", 12) + "THE-IMPORTANT-PART"
	unbroken := strings.Repeat("x", 150) // a word wider than a line: cut, never dropped
	b := flow.New("wide", flow.Options{})
	flow.Add(b, task.New("short", func(ctx context.Context, _ struct{}) (int, error) {
		return 0, errors.New("disk full")
	}, task.Options{}), nil)
	flow.Add(b, task.New("long", func(ctx context.Context, _ struct{}) (int, error) {
		return 0, errors.New(long)
	}, task.Options{}), nil)
	flow.Add(b, task.New("unbroken", func(ctx context.Context, _ struct{}) (int, error) {
		return 0, errors.New(unbroken)
	}, task.Options{}), nil)
	f, err := b.Build()
	require.NoError(t, err)
	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{})
	require.Error(t, err)

	for _, width := range []int{0, 100, 60} {
		var out strings.Builder
		require.NoError(t, res.WriteReport(&out, flow.ReportOptions{Width: width}))
		limit := width
		if limit == 0 {
			limit = 100
		}
		text := out.String()
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			assert.LessOrEqual(t, utf8.RuneCountInString(line), limit, "width %d: %q", width, line)
			assert.Equal(t, strings.TrimRight(line, " "), line, "no trailing spaces")
		}
		assert.Regexp(t, `(?m)^short +Failed +1 +\S+ +disk full$`, text, "a short error stays on its row")
		// The long error, wrapped under its row, reads back word for word.
		words := strings.Join(strings.Fields(text), " ")
		assert.Contains(t, words, long, "width %d: the whole error is there", width)
		assert.Contains(t, strings.ReplaceAll(strings.Join(strings.Fields(text), ""), " ", ""), unbroken)
		assert.Contains(t, text, "\n    told to stop and may", "the error starts on its own line, indented")
		assert.NotContains(t, text, "…", "nothing is cut")
	}
}

// TestReportOfNoRun is the report of the nil Result Run returns when it
// fails before any task starts: a line that says so, not a panic.
func TestReportOfNoRun(t *testing.T) {
	b := flow.New("params", flow.Options{})
	day := flow.Param[string](b, "day")
	flow.Add(b, task.New("echo", func(ctx context.Context, s string) (string, error) { return s, nil }, task.Options{}), day)
	f, err := b.Build()
	require.NoError(t, err)
	res, err := f.Run(context.Background(), newLocal(t), flow.RunOptions{}) // no value for day
	var pe *flow.ParamError
	require.ErrorAs(t, err, &pe)
	require.Nil(t, res)
	assert.Equal(t, "no flow run: Run failed before any task started (see its error)\n", res.Report())
}

func TestGraphs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, day := etl(t)
		assert.Equal(t, `digraph "etl" {
  rankdir=LR;
  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];
  p0 [label="day", shape=parallelogram, style=filled, fillcolor="#f1f3f4"];
  n0 [label="extract"];
  n1 [label="transform (map)", peripheries=2];
  n2 [label="migrate"];
  n3 [label="load"];
  p0 -> n0;
  n0 -> n1;
  n1 -> n3;
  n2 -> n3 [style=dashed];
}
`, f.DOT())
		assert.Equal(t, `flowchart LR
  p0[/"day"/]
  n0["extract"]
  n1[["transform (map)"]]
  n2["migrate"]
  n3["load"]
  p0 --> n0
  n0 --> n1
  n1 --> n3
  n2 -.-> n3
`, f.Mermaid())

		res, _ := f.Run(context.Background(), newLocal(t), flow.RunOptions{Args: []flow.Arg{day.Set("monday")}})
		dot := res.DOT()
		assert.Contains(t, dot, `n0 [label="extract\nSuccess", fillcolor="#b7e1cd"];`)
		assert.Contains(t, dot, `n1 [label="transform (map ×3)\nFailed", peripheries=2, fillcolor="#f28b82"];`)
		assert.Contains(t, dot, `n3 [label="load\nTriggerFailed", fillcolor="#d7b8f3", style="rounded,filled,dashed"];`)
		assert.Contains(t, dot, "  subgraph cluster_legend {\n")
		for _, s := range []string{"Success", "Failed", "TriggerFailed"} {
			assert.Contains(t, dot, "    legend_"+s+" [label=\""+s+"\"", "the legend lists %s", s)
		}
		assert.NotContains(t, dot, "legend_Skipped", "only the states that occur")
		mm := res.Mermaid()
		assert.Contains(t, mm, `n1[["transform (map ×3)<br/>Failed"]]`)
		assert.Contains(t, mm, "  subgraph legend [legend]\n    direction LR\n    legend_Success[\"Success\"]\n    legend_Failed[\"Failed\"]\n    legend_TriggerFailed[\"TriggerFailed\"]\n    legend_Success ~~~ legend_Failed\n    legend_Failed ~~~ legend_TriggerFailed\n  end\n")
		assert.Contains(t, mm, "  classDef Success fill:#b7e1cd,stroke:#555\n  class n0,n2,legend_Success Success\n")
		assert.Contains(t, mm, "  class n1,legend_Failed Failed\n")
		assert.Contains(t, mm, "  classDef TriggerFailed fill:#d7b8f3,stroke:#555,stroke-dasharray:5 3\n  class n3,legend_TriggerFailed TriggerFailed\n")
		assert.NotContains(t, f.DOT(), "legend", "a flow that has not run has no states to explain")
	})
}

// TestGraphStatesAreDistinct: every final state has a colour of its own,
// so TriggerFailed (never ran) cannot be mistaken for Failed.
func TestGraphStatesAreDistinct(t *testing.T) {
	colors := flow.StateColors()
	seen := map[string]task.State{}
	for _, s := range []task.State{task.Success, task.Failed, task.TimedOut, task.Skipped, task.TriggerFailed, task.Cancelled} {
		c, ok := colors[s]
		require.True(t, ok, "%v has a colour", s)
		if other, dup := seen[c]; dup {
			t.Errorf("%v and %v share the colour %s", s, other, c)
		}
		seen[c] = s
	}
	assert.NotEqual(t, colors[task.Failed], colors[task.TriggerFailed])
}

func TestTaskResults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, day := etl(t)
		res, _ := f.Run(context.Background(), newLocal(t), flow.RunOptions{Args: []flow.Arg{day.Set("monday")}})
		trs := res.TaskResults()
		require.Len(t, trs, len(res.Tasks))
		for i, tr := range trs {
			assert.Equal(t, res.Tasks[i].Task, tr.Task)
			assert.Equal(t, res.Tasks[i].State, tr.State)
			assert.Len(t, tr.Attempts, len(res.Tasks[i].Attempts))
		}
	})
}

func TestGraphQuotesNames(t *testing.T) {
	b := flow.New(`we"ird`, flow.Options{})
	flow.Add(b, intTask(`a "quoted" \ name`, 1, task.Options{}), nil)
	f, err := b.Build()
	require.NoError(t, err)
	assert.Contains(t, f.DOT(), `digraph "we\"ird" {`)
	assert.Contains(t, f.DOT(), `n0 [label="a \"quoted\" \\ name"];`)
	assert.Contains(t, f.Mermaid(), `n0["a #quot;quoted#quot; \ name"]`)
}

func TestJSONRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, day := etl(t)
		res, _ := f.Run(context.Background(), newLocal(t), flow.RunOptions{RunID: "run1", Args: []flow.Arg{day.Set("monday")}})
		data, err := json.Marshal(res)
		require.NoError(t, err)

		var rec struct {
			Flow       string     `json:"flow"`
			RunID      string     `json:"run_id"`
			State      task.State `json:"state"`
			Error      string     `json:"error"`
			DurationNS int64      `json:"duration_ns"`
			Tasks      []struct {
				Task       string     `json:"task"`
				Node       string     `json:"node"`
				Index      *int       `json:"index"`
				Mapped     bool       `json:"mapped"`
				Children   int        `json:"children"`
				RunID      string     `json:"run_id"`
				State      task.State `json:"state"`
				Error      string     `json:"error"`
				ErrorClass string     `json:"error_class"`
				Start      *time.Time `json:"start"`
				DurationNS int64      `json:"duration_ns"`
				Attempts   []struct {
					N          int    `json:"n"`
					Error      string `json:"error"`
					ErrorClass string `json:"error_class"`
					DurationNS int64  `json:"duration_ns"`
				} `json:"attempts"`
			} `json:"tasks"`
		}
		require.NoError(t, json.Unmarshal(data, &rec))
		assert.Equal(t, "etl", rec.Flow)
		assert.Equal(t, "run1", rec.RunID)
		assert.Equal(t, task.Failed, rec.State)
		assert.Contains(t, rec.Error, "bad row")
		assert.Equal(t, int64(8*time.Second), rec.DurationNS)
		require.Len(t, rec.Tasks, 7)
		ex := rec.Tasks[0]
		assert.Equal(t, "extract", ex.Task)
		assert.Nil(t, ex.Index)
		assert.Equal(t, "run1/extract", ex.RunID)
		require.Len(t, ex.Attempts, 2)
		assert.Equal(t, "connection reset", ex.Attempts[0].Error)
		assert.Equal(t, "failure", ex.Attempts[0].ErrorClass)
		assert.Equal(t, int64(time.Second), ex.Attempts[0].DurationNS)
		assert.Empty(t, ex.Attempts[1].Error)
		tr := rec.Tasks[1]
		assert.True(t, tr.Mapped)
		assert.Equal(t, 3, tr.Children)
		child := rec.Tasks[4]
		assert.Equal(t, "transform[2]", child.Task)
		require.NotNil(t, child.Index)
		assert.Equal(t, 2, *child.Index)
		assert.Equal(t, task.Failed, child.State)
		load := rec.Tasks[6]
		assert.Equal(t, task.TriggerFailed, load.State)
		assert.Nil(t, load.Start, "never started")
		assert.Empty(t, load.Attempts)
		assert.Contains(t, string(data), `"state":"TriggerFailed"`, "states are names")
	})
}
