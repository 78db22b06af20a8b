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
	//   upper[1]  Success  2         retried after: flaky
	//   upper[2]  Success  1
	// join        Success  1
	// 6 task runs: 6 Success
}

// A task has one input: Combine2 (and Combine3, Collect, Convert) feed it
// from several upstream tasks, each with its own type, checked by the
// compiler.
func ExampleCombine2() {
	type invoice struct {
		Customer string
		Total    int
	}
	customer := task.New("customer", func(ctx context.Context, id int) (string, error) {
		return fmt.Sprintf("customer-%d", id), nil
	}, task.Options{})
	total := task.New("total", func(ctx context.Context, prices []int) (int, error) {
		sum := 0
		for _, p := range prices {
			sum += p
		}
		return sum, nil
	}, task.Options{})
	render := task.New("render", func(ctx context.Context, in invoice) (string, error) {
		return fmt.Sprintf("%s owes %d", in.Customer, in.Total), nil
	}, task.Options{})

	b := flow.New("invoice", flow.Options{})
	c := flow.Add(b, customer, flow.Const(42))
	t := flow.Add(b, total, flow.Const([]int{3, 4, 5}))
	text := flow.Add(b, render, flow.Combine2(c, t, func(c string, t int) invoice { return invoice{c, t} }))
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	res, _ := f.Run(context.Background(), ex, flow.RunOptions{})
	out, ok := flow.Value(res, text)
	fmt.Println(out, ok)
	// Output: customer-42 owes 12 true
}

// Build finds what can be found before a run, and names the tasks.
func ExampleBuilder_Build() {
	inc := task.New("inc", func(ctx context.Context, n int) (int, error) { return n + 1, nil }, task.Options{})
	b := flow.New("broken", flow.Options{})
	a := flow.Add(b, inc, flow.Const(1))
	c := flow.Add(b, inc, a).Named("c")
	a.After(c)          // a cycle: a -> c -> a
	flow.Add(b, inc, c) // a second node named "inc"

	_, err := b.Build()
	fmt.Println(errors.Is(err, flow.ErrCycle), errors.Is(err, flow.ErrDuplicateName))
	fmt.Println(err)
	// Output:
	// true true
	// flow "broken": duplicate name: "inc" names 2 nodes and parameters; rename with Named
	// flow "broken": cycle: "inc" -> "c" -> "inc"
}

// Parameters are typed; a run without a required one fails before any
// task starts.
func ExampleParam() {
	greet := task.New("greet", func(ctx context.Context, name string) (string, error) {
		return "hello, " + name, nil
	}, task.Options{})
	b := flow.New("greeting", flow.Options{})
	name := flow.Param[string](b, "name")
	out := flow.Add(b, greet, name)
	f, _ := b.Build()
	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())

	_, err := f.Run(context.Background(), ex, flow.RunOptions{})
	fmt.Println(err, errors.Is(err, flow.ErrMissingParam))

	res, _ := f.Run(context.Background(), ex, flow.RunOptions{Args: []flow.Arg{name.Set("gopher")}})
	v, _ := flow.Value(res, out)
	fmt.Println(v)
	// Output:
	// flow "greeting": missing parameter "name" true
	// hello, gopher
}

// A flow's graph, as Mermaid, before a run and coloured by state after it.
func ExampleResult_Mermaid() {
	ok := task.New("ok", func(ctx context.Context, _ struct{}) (int, error) { return 1, nil }, task.Options{})
	bad := task.New("bad", func(ctx context.Context, _ int) (int, error) { return 0, errors.New("no") }, task.Options{})
	b := flow.New("graph", flow.Options{})
	flow.Add(b, bad, flow.Add(b, ok, nil))
	f, _ := b.Build()
	fmt.Print(f.Mermaid())

	ex := local.New(local.Options{})
	defer ex.Shutdown(context.Background())
	res, _ := f.Run(context.Background(), ex, flow.RunOptions{})
	fmt.Print(res.Mermaid())
	// Output:
	// flowchart LR
	//   n0["ok"]
	//   n1["bad"]
	//   n0 --> n1
	// flowchart LR
	//   n0["ok<br/>Success"]
	//   n1["bad<br/>Failed"]
	//   n0 --> n1
	//   subgraph legend [legend]
	//     direction LR
	//     legend_Success["Success"]
	//     legend_Failed["Failed"]
	//     legend_Success ~~~ legend_Failed
	//   end
	//   classDef Success fill:#b7e1cd,stroke:#555
	//   class n0,legend_Success Success
	//   classDef Failed fill:#f28b82,stroke:#555
	//   class n1,legend_Failed Failed
}
