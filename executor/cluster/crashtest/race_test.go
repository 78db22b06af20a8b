//go:build race

package crashtest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Under the race detector the crash suite does not build: it measures
// recovery times of real server processes, which instrumentation slows
// several times over. CI runs it without -race (.ci/run); the cluster
// package's own tests run under -race.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
