package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
)

// Steer runs from another process: ask a running run's driver to cancel
// it, and a failed run to be retried by a process running flow.Serve. A
// request the run's state refuses is a *store.RequestError.
func Example_requests() {
	dir, _ := os.MkdirTemp("", "requests")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "runs.db"), sqlite.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	_ = st.CreateRun(ctx, store.Run{ID: "running", Flow: "etl"})
	_ = st.CreateRun(ctx, store.Run{ID: "failed", Flow: "etl"})
	_ = st.Apply(ctx, &store.Batch{RunID: "failed", Run: &store.RunUpdate{State: "Failed", Ended: time.Now()}})

	fmt.Println(st.RequestCancel(ctx, "running"))
	fmt.Println(st.RequestRetry(ctx, "failed"))
	err = st.RequestRetry(ctx, "running")
	fmt.Println(errors.Is(err, store.ErrNotRetryable), err)
	err = st.RequestCancel(ctx, "failed")
	fmt.Println(errors.Is(err, store.ErrFinished), err)

	pending, _ := st.Runs(ctx, store.RunFilter{RetryRequested: true})
	r, _ := st.Run(ctx, "running")
	fmt.Println(len(pending), pending[0].ID, !r.CancelRequested.IsZero())
	// Output:
	// <nil>
	// <nil>
	// true store: cannot retry run running: it is Running (only a finished run that did not succeed can be retried)
	// true store: cannot cancel run failed: it is Failed (it has finished)
	// 1 failed true
}
