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
// Chromium is installed the test is skipped with a message naming the
// package to install, or fails when the environment variable CI is
// "true", so that CI never passes without the browser tests.
func ForTest(t testing.TB, opts Options) *Browser {
	t.Helper()
	if opts.Path == "" {
		p, err := Find()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%v: CI=true, so the browser tests must run (apt-get install -y chromium)", err)
			}
			t.Skipf("%v: skipping the browser tests (apt-get install -y chromium to run them)", err)
		}
		opts.Path = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, opts)
	if errors.Is(err, errors.ErrUnsupported) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}
