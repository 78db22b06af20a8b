package flow_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// Build a flow with a parameter, a mapped task and a retry, run it on the
// local executor, and print its report.
func Example() {
	extract := task.New("extract", func(ctx context.Context, csv string) ([]string, error) {
		return strings.Split(csv, ","), nil
	}, task.Options{})
	calls := 0
	upper := task.New("upper", func(ctx context.Context, s string) (string, error) {
		calls++
		if calls == 2 {
			return "", errors.New("flaky")
		}
		return strings.ToUpper(s), nil
	}, task.Options{MaxRetries: 1})
	join := task.New("join", func(ctx context.Context, words []string) (string, error) {
		return strings.Join(words, " "), nil
	}, task.Options{})

	b := flow.New("shout", flow.Options{})
	csv := flow.Param[string](b, "csv")
	words := flow.Add(b, extract, csv)
	loud := flow.Map(b, upper, words)
	line := flow.Add(b, join, loud)
	f, err := b.Build()
	if err != nil {
		panic(err)
	}

	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	res, err := f.Run(context.Background(), ex, flow.RunOptions{Args: []flow.Arg{csv.Set("hello,flow,world")}})
	if err != nil {
		panic(err)
	}
	out, _ := flow.Value(res, line)
	fmt.Println(out)
	_ = res.WriteReport(os.Stdout, flow.ReportOptions{OmitTimes: true})
	// Output:
	// HELLO FLOW WORLD
	// flow shout: Success
	// TASK        STATE    ATTEMPTS  ERROR
	// extract     Success  1
	// upper       Success  ×3
	//   upper[0]  Success  1
	//   upper[1]  Success  2
	//   upper[2]  Success  1
	// join        Success  1
	// 6 task runs: 6 Success
}
