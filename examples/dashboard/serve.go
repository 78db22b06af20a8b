package main

import "context"

// serveFlows performs the dashboard's retry requests and resumes runs a
// dead process left, until ctx ends (flow.Serve, coming).
func (s *service) serveFlows(ctx context.Context) { <-ctx.Done() }

// checkSteer retries and cancels through the dashboard (coming with
// store.RequestRetry and RequestCancel).
func (s *service) checkSteer(c *checker, report string) error { return nil }
