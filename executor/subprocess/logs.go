package subprocess

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// A task's log lines cross the process boundary as hclog JSON lines: in
// the worker, the task's logger is an hclog JSON logger whose output is a
// sink that sends each line as a Log frame; here, replay decodes the line
// and logs it again on the caller's logger, with the same level, message
// and key/value pairs (task, run and attempt among them). Numbers keep
// their text (json.Number), so an attempt logged as 2 is logged as 2.

// replay logs one hclog JSON line on l.
func replay(l hclog.Logger, line []byte) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		l.Warn("undecodable task log line", "line", string(bytes.TrimSpace(line)), "error", err)
		return
	}
	level := hclog.Info
	if s, ok := m["@level"].(string); ok {
		if lv := hclog.LevelFromString(s); lv != hclog.NoLevel {
			level = lv
		}
	}
	msg, _ := m["@message"].(string)
	if mod, ok := m["@module"].(string); ok && mod != "" {
		l = l.Named(mod)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") { // hclog's own: @level, @message, @timestamp, @module, @caller
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, m[k])
	}
	l.Log(level, msg, args...)
}

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
