package wire

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// A task's log lines cross a process or machine boundary as hclog JSON
// lines: where the task runs, its logger is an hclog JSON logger whose
// output goes over the wire line by line; where the caller is, ReplayLog
// decodes each line and logs it again on the caller's logger, with the
// same level, message, module and key/value pairs (task, run and attempt
// among them). Numbers keep their text (json.Number), so an attempt logged
// as 2 is logged as 2.

// ReplayLog logs one hclog JSON line on l. A line that does not decode is
// logged at Warn, quoted, instead of being dropped.
func ReplayLog(l hclog.Logger, line []byte) {
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
