package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the test binary as the flowline command when the tests
// start it so (main_test.go's envMain), else runs the tests.
func TestMain(m *testing.M) {
	if os.Getenv("FLOWLINE_CLI_TEST_MAIN") == "1" {
		main()
	}
	goleak.VerifyTestMain(m)
}
