//go:build !linux

package subprocess_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The tests that start worker processes run on Linux (main_test.go and
// the files with a linux constraint); elsewhere only the portable ones do.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
