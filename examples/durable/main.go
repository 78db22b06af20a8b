// Command durable shows a durable flow run surviving a crash: it runs a
// flow of 200 mapped tasks in a child process with a SQLite run store,
// kills the child (SIGKILL) midway, resumes the run here from the store,
// and prints which tasks ran again. It exits non-zero if a task whose
// completion was recorded before the kill ran a second time.
//
//	go run ./examples/durable
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

const (
	childEnv = "DURABLE_EXAMPLE_CHILD" // the store's path, in the child
	runID    = "durable-example"
	n        = 200
)

// build is the flow: square each of 0..n-1 (5 ms each), then sum. Every
// task run appends its label to effects: what ran, outside the store.
func build(effects *os.File) (*flow.Flow, *flow.Node[int]) {
	square := task.New("square", func(_ context.Context, x int) (int, error) {
		fmt.Fprintf(effects, "square[%d]\n", x)
		time.Sleep(5 * time.Millisecond)
		return x * x, nil
	}, task.Options{})
	sum := task.New("sum", func(_ context.Context, xs []int) (int, error) {
		fmt.Fprintln(effects, "sum")
		t := 0
		for _, x := range xs {
			t += x
		}
		return t, nil
	}, task.Options{})
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	b := flow.New("squares", flow.Options{})
	total := flow.Add(b, sum, flow.Map(b, square, flow.Const(xs)))
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	return f, total
}

func main() {
	if path := os.Getenv(childEnv); path != "" {
		if err := child(path); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	if err := parent(); err != nil {
		fmt.Fprintln(os.Stderr, "durable:", err)
		os.Exit(1)
	}
}

func open(path string) (*sqlite.Store, *os.File, error) {
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		return nil, nil, err
	}
	effects, err := os.OpenFile(path+".effects", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, effects, nil
}

// child starts the run; the parent kills it before it ends.
func child(path string) error {
	st, effects, err := open(path)
	if err != nil {
		return err
	}
	defer st.Close()
	defer effects.Close()
	f, _ := build(effects)
	ex := pool.New(pool.Options{Workers: 4})
	defer ex.Shutdown(context.Background())
	_, err = f.Run(context.Background(), ex, flow.RunOptions{Store: st, RunID: runID, LeaseTTL: time.Second})
	return err
}

func parent() error {
	dir, err := os.MkdirTemp("", "flowline-durable")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "runs.db")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	for len(ran(path)) < n/2 {
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	before := ran(path)
	fmt.Printf("killed the child after %d task runs had started\n", len(before))

	st, effects, err := open(path)
	if err != nil {
		return err
	}
	defer st.Close()
	defer effects.Close()
	ctx := context.Background()
	trs, err := st.TaskRuns(ctx, runID)
	if err != nil {
		return err
	}
	complete := map[string]bool{}
	for _, tr := range trs {
		var s task.State
		if s.UnmarshalText([]byte(tr.State)) == nil && s.Final() {
			complete[tr.Label] = true
		}
	}
	fmt.Printf("the store had %d task runs recorded complete\n", len(complete))

	f, total := build(effects)
	ex := pool.New(pool.Options{Workers: 4})
	defer ex.Shutdown(ctx)
	var res *flow.Result
	for { // the dead child's lease expires LeaseTTL after its last heartbeat
		res, err = f.Resume(ctx, ex, runID, flow.RunOptions{Store: st})
		if !errors.Is(err, store.ErrLeaseHeld) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	v, _ := flow.Value(res, total)
	fmt.Printf("resumed: %v, sum = %d\n", res.State, v)

	after := ran(path)[len(before):]
	var again, twice []string
	seen := map[string]bool{}
	for _, l := range before {
		seen[l] = true
	}
	for _, l := range after {
		if seen[l] {
			again = append(again, l)
		}
		if complete[l] {
			twice = append(twice, l)
		}
	}
	sort.Strings(again)
	fmt.Printf("%d tasks ran again (in flight at the kill, not recorded complete): %v\n", len(again), again)
	if want := (n - 1) * n * (2*n - 1) / 6; v != want {
		return fmt.Errorf("sum is %d, want %d", v, want)
	}
	if len(twice) > 0 {
		return fmt.Errorf("%d tasks recorded complete ran again: %v", len(twice), twice)
	}
	fmt.Println("no task recorded complete ran twice")
	return nil
}

// ran returns the labels of the task runs that have started, in order.
func ran(path string) []string {
	data, _ := os.ReadFile(path + ".effects")
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
