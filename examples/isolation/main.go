// Command isolation shows crash isolation on the subprocess executor: in
// one flow, a task that panics, one that calls os.Exit(3) and one that
// blows up its memory each fail their own call, while the other tasks of
// the flow complete and a summary task reports what happened to each.
//
// The jobs are mapped over one task, so each runs in a warm worker
// process; a worker that exits, or goes over the 256 MiB memory limit, is
// replaced, and no job is retried, to make the failures plain. The
// summary runs after all of them (trigger AllFinished) and sees each job's
// outcome. It exits non-zero if a failure was not the one expected, or if
// a healthy job did not succeed.
//
//	go run ./examples/isolation
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/subprocess"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// job does what its name says, in a worker process.
var job = task.New("job", func(ctx context.Context, kind string) (string, error) {
	switch kind {
	case "panic":
		var m map[string]int
		//lint:ignore SA5000 the demo's panic: writing to a nil map is the point
		m["boom"]++ // assignment to entry in nil map
	case "exit":
		fmt.Fprintln(os.Stderr, "job: giving up with status 3")
		os.Exit(3)
	case "memory":
		var hoard [][]byte
		for {
			chunk := make([]byte, 16<<20)
			for i := range chunk { // touch every page, so it counts as resident
				chunk[i] = 1
			}
			//lint:ignore SA4010 the demo's memory blow-up: the hoard is kept only to stay resident
			hoard = append(hoard, chunk)
			time.Sleep(5 * time.Millisecond)
		}
	}
	return "processed " + kind, nil
}, task.Options{Timeout: 10 * time.Second})

// summary reports each job's outcome; it runs whatever they did.
var summary = task.New("summary", func(ctx context.Context, outcomes []flow.Outcome[string]) (string, error) {
	var b strings.Builder
	for i, o := range outcomes {
		fmt.Fprintf(&b, "  job[%d] %-8v %s\n", i, o.State, describe(o))
	}
	return b.String(), nil
}, task.Options{Trigger: task.AllFinished})

func describe(o flow.Outcome[string]) string {
	var pe *executor.PanicError
	var ce *executor.CrashError
	switch {
	case o.Err == nil:
		return o.Value
	case errors.As(o.Err, &pe):
		return fmt.Sprintf("panic: %v", pe.Value)
	case errors.As(o.Err, &ce):
		return fmt.Sprintf("worker crashed: %s", ce.Reason)
	}
	return o.Err.Error()
}

func registry() *executor.Registry {
	reg, err := task.NewRegistry(job, summary)
	if err != nil {
		panic(err)
	}
	return reg
}

func main() {
	subprocess.ServeIfWorker(registry()) // in a worker: serve, never return
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "isolation:", err)
		os.Exit(1)
	}
}

func run() error {
	kinds := []string{"ok", "panic", "exit", "ok", "memory", "ok"}

	b := flow.New("isolation", flow.Options{Timeout: time.Minute})
	jobs := flow.Map(b, job, flow.Const(kinds))
	report := flow.Add(b, summary, flow.Outcomes(jobs))
	b.Reference(report) // the flow succeeds if the summary does
	f, err := b.Build()
	if err != nil {
		return err
	}

	// MemoryLimit is Linux only: elsewhere New says so (an *UnsupportedError).
	ex, err := subprocess.New(subprocess.Options{Workers: 2, MemoryLimit: 256 << 20, Grace: time.Second})
	if err != nil {
		return err
	}
	defer ex.Shutdown(context.Background())
	res, err := f.Run(context.Background(), ex, flow.RunOptions{})
	if res == nil {
		return err
	}
	if err != nil {
		fmt.Print(res.Report())
		return err
	}
	text, _ := flow.Value(res, report)
	fmt.Printf("flow %s: %v in %v\n%s", res.Flow, res.State, res.Duration().Round(time.Millisecond), text)

	// Check that each job failed (or not) the way it should have.
	var problems []string
	for i, kind := range kinds {
		tr, _ := res.Task(fmt.Sprintf("job[%d]", i))
		var pe *executor.PanicError
		var ce *executor.CrashError
		ok := false
		switch kind {
		case "ok":
			ok = tr.State == task.Success
		case "panic":
			ok = tr.State == task.Failed && errors.As(tr.Err, &pe)
		case "exit":
			ok = tr.State == task.Failed && errors.As(tr.Err, &ce) && strings.Contains(ce.Reason, "exit status 3") &&
				strings.Contains(ce.Stderr, "giving up with status 3")
		case "memory":
			ok = tr.State == task.Failed && errors.As(tr.Err, &ce) && strings.HasPrefix(ce.Reason, "memory limit")
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("job[%d] (%s): %v: %v", i, kind, tr.State, tr.Err))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Println("checked: each failure stayed in its own call; every other job succeeded.")
	return nil
}
