package flow_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

// A service runs Serve over its store: a retry requested by another
// process (a dashboard, the CLI) is performed here, re-running only the
// failed task.
func ExampleServe() {
	dir, _ := os.MkdirTemp("", "serve")
	defer os.RemoveAll(dir)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "runs.db"), sqlite.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()

	down := true
	fetch := task.New("fetch", func(ctx context.Context, _ struct{}) (string, error) {
		if down {
			return "", errors.New("upstream is down")
		}
		return "data", nil
	}, task.Options{})
	b := flow.New("nightly", flow.Options{})
	flow.Add(b, fetch, flow.Const(struct{}{}))
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	ex := local.New(local.Options{})
	defer ex.Shutdown(ctx)

	res, _ := f.Run(ctx, ex, flow.RunOptions{Store: st, RunID: "nightly-1"})
	fmt.Println("first run:", res.State)

	down = false
	// What `flowline runs retry nightly-1` does, from any process:
	if err := st.RequestRetry(ctx, "nightly-1"); err != nil {
		panic(err)
	}
	err = flow.Serve(ctx, ex, []*flow.Flow{f}, flow.ServeOptions{
		RunOptions: flow.RunOptions{Store: st},
		OnResult: func(res *flow.Result, err error) {
			fmt.Println("retried by Serve:", res.RunID, res.State)
			stop() // a service would go on serving
		},
	})
	fmt.Println("Serve returned:", err)
	// Output:
	// first run: Failed
	// retried by Serve: nightly-1 Success
	// Serve returned: context canceled
}
