package main

import (
	"context"
	"fmt"
	"net/url"
)

// serveFlows performs the dashboard's retry requests and resumes runs a
// dead process left, until ctx ends (flow.Serve, coming).
func (s *service) serveFlows(ctx context.Context) { <-ctx.Done() }

// checkSteer asks for a retry of the failed run through the dashboard's
// form and checks that the store has the request.
func (s *service) checkSteer(c *checker, report string) error {
	c.post("runs/"+url.PathEscape(report)+"/retry", 303)
	if c.err != nil {
		return c.err
	}
	run, err := s.st.Run(c.ctx, report)
	if err != nil {
		return err
	}
	if run.RetryRequested.IsZero() {
		return fmt.Errorf("the dashboard's retry of %s recorded no request", report)
	}
	fmt.Println("ok: the dashboard's retry button recorded a retry request")
	return nil
}
