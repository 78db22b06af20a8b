package main

// The example is a main package, so its test is in the package itself.

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCheck runs the example's own check (what CI runs with -check) in
// the test binary, so that goleak sees that the service stops
// everything it started: the runs, flow.Serve, the HTTP server and its
// live streams, the executor.
func TestCheck(t *testing.T) {
	if err := run("", "", 0, true); err != nil {
		t.Fatal(err)
	}
}
