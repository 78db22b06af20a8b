package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
)

// serveFlows performs the dashboard's retry requests, and resumes the
// runs a dead process left, until ctx ends.
func (s *service) serveFlows(ctx context.Context) {
	err := flow.Serve(ctx, s.ex, s.flows(), flow.ServeOptions{RunOptions: flow.RunOptions{Store: s.st, Logger: s.log}, PollInterval: 200 * time.Millisecond})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("flow.Serve stopped", "error", err)
	}
}

// checkSteer retries the failed report run and cancels a long nightly run
// through the dashboard's own forms, and checks what became of them: the
// retry re-ran only the failed page (and publish, which had not run), the
// cancel ended the run Cancelled.
func (s *service) checkSteer(c *checker, report string) error {
	c.post("runs/"+url.PathEscape(report)+"/retry", 303)
	if c.err != nil {
		return c.err
	}
	run, err := s.waitState(c.ctx, report, "Success")
	if err != nil {
		return err
	}
	as, err := s.st.Attempts(c.ctx, report)
	if err != nil {
		return err
	}
	n := map[string]int{}
	for _, a := range as {
		n[a.Label]++
	}
	if n["render[1]"] != 2 || n["fetch"] != 1 || n["archive"] != 1 || n["render[0]"] != 1 || n["publish"] != 1 {
		return fmt.Errorf("the retry of %s ran the wrong tasks: attempts by task %v", report, n)
	}
	page := c.get("runs/"+url.PathEscape(report), 200)
	c.want(page, `data-run-state="Success"`, "the retried run's page")
	fmt.Printf("ok: the dashboard's retry had flow.Serve restart %s from its failed task: it ended %s, only render[1] ran again\n", report, run.State)

	long := s.start(c.ctx, s.nightly, s.stepMS.Set(60_000))
	if _, err := s.waitState(c.ctx, long, "Running"); err != nil {
		return err
	}
	asked := time.Now()
	c.post("runs/"+url.PathEscape(long)+"/cancel", 303)
	if c.err != nil {
		return c.err
	}
	ended, err := s.waitState(c.ctx, long, "Cancelled")
	if err != nil {
		return err
	}
	fmt.Printf("ok: the dashboard's cancel stopped %s (a run of minutes) %v after the click (its driver looks every second)\n",
		long, ended.Ended.Sub(asked).Round(time.Millisecond))
	return c.err
}

// waitState waits for run id to be in state.
func (s *service) waitState(ctx context.Context, id, state string) (run store.Run, err error) {
	for {
		run, err = s.st.Run(ctx, id)
		if err == nil && run.State == state && (state == "Running" || run.Finished()) {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return run, fmt.Errorf("run %s did not become %s (it is %s): %w", id, state, run.State, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
