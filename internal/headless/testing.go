package headless

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// ForTest starts a browser for test t and closes it when the test ends,
// failing the test if Close finds a process of the browser left. When no
// Chromium is installed the test is skipped or fails, as SkipOrFail says.
func ForTest(t testing.TB, opts Options) *Browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, opts)
	if err != nil {
		SkipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// SkipOrFail ends test t for err, a failed Start: a missing Chromium
// (ErrNotFound) or an unsupported system skips the test with a message
// naming the package to install, except when the environment variable CI
// is "true", where it fails, so that CI never passes without the browser
// tests; any other error fails it.
func SkipOrFail(t testing.TB, err error) {
	t.Helper()
	missing := errors.Is(err, ErrNotFound) || errors.Is(err, errors.ErrUnsupported)
	switch {
	case missing && os.Getenv("CI") == "true":
		t.Fatalf("%v: CI=true, so the browser tests must run (apt-get install -y chromium)", err)
	case missing:
		t.Skipf("%v: skipping the browser tests (apt-get install -y chromium to run them)", err)
	default:
		t.Fatal(err)
	}
}
