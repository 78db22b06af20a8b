package subprocess

import (
	"github.com/hashicorp/go-hclog"
)

// A task's log lines cross the process boundary as hclog JSON lines, in
// Log frames; wire.ReplayLog logs them again on the caller's logger.

// logSink is the output of a task's logger in the worker: each hclog
// entry (hclog writes one per Write) becomes a Log frame of the call.
type logSink struct {
	s   *server
	seq uint64
}

func (l *logSink) Write(p []byte) (int, error) {
	l.s.sendLog(l.seq, p)
	return len(p), nil
}

// taskLogger returns the logger a task of call seq gets in the worker, or
// nil when the caller logs nothing.
func (s *server) taskLogger(seq uint64, level hclog.Level) hclog.Logger {
	if level == hclog.Off || level == hclog.NoLevel {
		return nil
	}
	return hclog.New(&hclog.LoggerOptions{
		Output:      &logSink{s: s, seq: seq},
		Level:       level,
		JSONFormat:  true,
		DisableTime: true, // the caller's logger stamps the line when it arrives
	})
}
