package envelope

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Header names of a call's message. MsgID is JetStream's deduplication
// header.
const (
	HeaderMsgID       = "Nats-Msg-Id"
	HeaderTask        = "Flowline-Task"
	HeaderKey         = "Flowline-Key"
	HeaderRun         = "Flowline-Run"
	HeaderAttempt     = "Flowline-Attempt"
	HeaderLimit       = "Flowline-Limit" // nanoseconds
	HeaderGrace       = "Flowline-Grace" // nanoseconds
	HeaderReply       = "Flowline-Reply" // where events go
	HeaderLog         = "Flowline-Log"   // "1": forward the task's log lines
	HeaderEnforcement = "Flowline-Enforcement"
)

// Call is what the headers of a call's message carry; the message's data
// is the encoded input.
type Call struct {
	ID      string // the call's id (executor.Call.ID), the message id
	Task    string
	Key     string // where the result goes
	Run     string
	Attempt int
	Limit   time.Duration // zero: none
	Grace   time.Duration // zero: the worker executor's default
	Reply   string        // subject for events; empty: send none
	Log     bool          // forward the task's log lines to Reply
	Hard    bool          // the submitter requires hard enforcement
}

// Header returns the message headers for c.
func (c *Call) Header() map[string][]string {
	h := make(map[string][]string, 10)
	h[HeaderMsgID] = []string{c.ID}
	h[HeaderTask] = []string{c.Task}
	h[HeaderKey] = []string{c.Key}
	h[HeaderRun] = []string{c.Run}
	h[HeaderAttempt] = []string{strconv.Itoa(c.Attempt)}
	if c.Limit > 0 {
		h[HeaderLimit] = []string{strconv.FormatInt(int64(c.Limit), 10)}
	}
	if c.Grace > 0 {
		h[HeaderGrace] = []string{strconv.FormatInt(int64(c.Grace), 10)}
	}
	if c.Reply != "" {
		h[HeaderReply] = []string{c.Reply}
	}
	if c.Log {
		h[HeaderLog] = []string{"1"}
	}
	if c.Hard {
		h[HeaderEnforcement] = []string{"hard"}
	}
	return h
}

func get(h map[string][]string, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ParseCall reads a call from message headers written by Call.Header. It
// fails on a missing task or key and on malformed numbers; what it
// returns with an error still has every field it could read, so that a
// worker can report the failure under the call's key.
func ParseCall(h map[string][]string) (Call, error) {
	c := Call{
		ID:    get(h, HeaderMsgID),
		Task:  get(h, HeaderTask),
		Key:   get(h, HeaderKey),
		Run:   get(h, HeaderRun),
		Reply: get(h, HeaderReply),
		Log:   get(h, HeaderLog) == "1",
		Hard:  get(h, HeaderEnforcement) == "hard",
	}
	var errs []error
	if c.Task == "" {
		errs = append(errs, errors.New("no task name"))
	}
	if c.Key == "" {
		errs = append(errs, errors.New("no result key"))
	}
	var err error
	if c.Attempt, err = strconv.Atoi(get(h, HeaderAttempt)); err != nil || c.Attempt < 1 {
		errs = append(errs, fmt.Errorf("bad attempt %q", get(h, HeaderAttempt)))
	}
	if c.Limit, err = duration(h, HeaderLimit); err != nil {
		errs = append(errs, err)
	}
	if c.Grace, err = duration(h, HeaderGrace); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("envelope: malformed call message: %w", errors.Join(errs...))
	}
	return c, nil
}

func duration(h map[string][]string, key string) (time.Duration, error) {
	v := get(h, key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad %s %q", key, v)
	}
	return time.Duration(n), nil
}
