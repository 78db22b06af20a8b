package dashboard

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// listQuery is the runs list's filter, as the query string gives it:
//
//	flow=NAME            runs of that flow only
//	state=S (repeated)   runs in one of these states: Running or a final state
//	since=T, until=T     created at or after since, before until; T is RFC 3339,
//	                     2006-01-02T15:04 (a browser's datetime-local, in Options.Location),
//	                     2006-01-02, or an age such as 90s, 15m, 6h, 7d (that long ago)
//	limit=N              at most N runs (1 to 10000; 100 when not given)
type listQuery struct {
	Flow         string
	States       []string
	Since, Until time.Time
	SinceText    string
	UntilText    string
	Limit        int
}

const defaultLimit = 100

// runStates are the states a run can be in, for the filter.
var runStates = []string{"Running", "Success", "Failed", "TimedOut", "Cancelled", "Skipped", "TriggerFailed"}

// parseListQuery reads the filter from q; a value it cannot read is an
// error that says which and why.
func parseListQuery(q url.Values, loc *time.Location, now time.Time) (listQuery, error) {
	lq := listQuery{Flow: strings.TrimSpace(q.Get("flow")), Limit: defaultLimit}
	for _, v := range q["state"] {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if st, ok := parseState(s); !ok || (!st.Final() && st != task.Running) {
				return lq, fmt.Errorf("state %q is not a run state: use one of %s", s, strings.Join(runStates, ", "))
			}
			if !slices.Contains(lq.States, s) {
				lq.States = append(lq.States, s)
			}
		}
	}
	var err error
	lq.SinceText = strings.TrimSpace(q.Get("since"))
	if lq.Since, err = parseWhen(lq.SinceText, loc, now); err != nil {
		return lq, fmt.Errorf("since: %w", err)
	}
	lq.UntilText = strings.TrimSpace(q.Get("until"))
	if lq.Until, err = parseWhen(lq.UntilText, loc, now); err != nil {
		return lq, fmt.Errorf("until: %w", err)
	}
	if !lq.Since.IsZero() && !lq.Until.IsZero() && !lq.Until.After(lq.Since) {
		return lq, fmt.Errorf("until (%s) must be after since (%s)", lq.UntilText, lq.SinceText)
	}
	if v := strings.TrimSpace(q.Get("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return lq, fmt.Errorf("limit %q is not a number from 1 to 10000", v)
		}
		lq.Limit = n
	}
	return lq, nil
}

// parseWhen reads a time: empty is zero; see listQuery for the forms.
func parseWhen(s string, loc *time.Location, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	age, ok := strings.CutSuffix(s, "d")
	if ok {
		if n, err := strconv.Atoi(age); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-12-02T03:04:05Z), 2026-12-02T03:04, 2026-12-02, or an age such as 15m, 6h, 7d", s)
}

// Encode gives the query string of the filter, for the live stream and
// links.
func (lq listQuery) Encode() string {
	q := url.Values{}
	if lq.Flow != "" {
		q.Set("flow", lq.Flow)
	}
	for _, s := range lq.States {
		q.Add("state", s)
	}
	if lq.SinceText != "" {
		q.Set("since", lq.SinceText)
	}
	if lq.UntilText != "" {
		q.Set("until", lq.UntilText)
	}
	if lq.Limit != defaultLimit {
		q.Set("limit", strconv.Itoa(lq.Limit))
	}
	return q.Encode()
}

// Has reports whether the filter selects state s (for the checkboxes).
func (lq listQuery) Has(s string) bool { return slices.Contains(lq.States, s) }

// listRuns returns the runs the filter selects, newest first, at most
// Limit of them, and whether there were more.
func (h *Handler) listRuns(ctx context.Context, lq listQuery) ([]store.Run, bool, error) {
	runs, err := h.st.Runs(ctx, store.RunFilter{Flow: lq.Flow, States: lq.States, Since: lq.Since, Until: lq.Until,
		Newest: true, Limit: lq.Limit + 1})
	if err != nil {
		return nil, false, err
	}
	more := len(runs) > lq.Limit
	if more {
		runs = runs[:lq.Limit]
	}
	return runs, more, nil
}
