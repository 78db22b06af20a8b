//go:build windows

package subprocess

import (
	"io"
	"os"
	"time"
)

// newSpinReader returns f: on Windows the protocol pipes are read as they
// are, without polling before a read blocks (see spin_unix.go).
func newSpinReader(f *os.File, spin time.Duration, linger bool, may func() bool) io.Reader { return f }

// kick does nothing on Windows.
func kick(r io.Reader) {}

// newBlockingReader returns f (see spin_unix.go).
func newBlockingReader(f *os.File, spin time.Duration) io.Reader { return f }
