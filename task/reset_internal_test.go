package task

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/limit"
	"github.com/flowline-go/flowline/observe"
)

// TestResetLeavesNothingOfTheRunBefore: init assigns a Runner's fields one
// by one (a whole-struct store costs a bulk write barrier), so a field
// added to Runner or Result and forgotten there would carry one run's
// state into the next. Runners driven through waits, retries, an
// observer, a clock and a final state, with and without Take, then Reset,
// must equal new ones. Those runs must have set every field that a new
// Runner has zero, or the comparison would prove nothing for that field.
func TestResetLeavesNothingOfTheRunBefore(t *testing.T) {
	fn := func(ctx context.Context, n int) (int, error) { return n, nil }
	retried := New("retried", fn, Options{MaxRetries: 1, Timeout: time.Second})
	next := New("next", fn, Options{})
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	tick := t0
	dirtyOpts := func() RunOptions {
		return RunOptions{
			RunID: "r1", Label: "l1", Logger: hclog.NewNullLogger(),
			OnState:  func(Change) {},
			Prior:    []Attempt{{N: 1, Start: t0, End: t0.Add(time.Millisecond)}},
			Observer: waitObserver{},
			Clock:    func() time.Time { tick = tick.Add(time.Millisecond); return tick },
		}
	}
	// drive runs a retried task to its end: it waits, fails, waits again,
	// then succeeds (value) or fails for good (err).
	drive := func(t *testing.T, r *Runner, last error) {
		r.Wait(limit.Wait{Limit: "l", Key: "k"})
		call := r.Start()
		_, again := r.AttemptDone(call.Attempt, nil, errors.New("first"), "w1")
		require.True(t, again)
		r.Wait(limit.Wait{Limit: "l", Key: "k"})
		call = r.Retry()
		if last != nil {
			r.AttemptDone(call.Attempt, nil, last, "w2")
		} else {
			r.AttemptDone(call.Attempt, 7, nil, "w2")
		}
		require.True(t, r.State().Final())
	}

	nonZero := map[string]bool{}
	note := func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			if !v.Field(i).IsZero() {
				nonZero[prefix+v.Type().Field(i).Name] = true
			}
		}
	}
	for _, c := range []struct {
		name string
		last error
		take bool
	}{
		{"success, taken", nil, true},
		{"failed, taken", errors.New("last"), true},
		{"success, not taken", nil, false},
		{"failed, not taken", errors.New("last"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := NewRunner(retried, 1, dirtyOpts())
			drive(t, r, c.last)
			note("", reflect.ValueOf(*r))
			note("res.", reflect.ValueOf(r.res))
			if c.take {
				r.Take()
			}
			opts := RunOptions{RunID: "r2", Label: "l2"}
			r.Reset(next, 3, opts)
			assert.Equal(t, *NewRunner(next, 3, opts), *r)
		})
	}

	// What a new Runner of next has zero, the runs above must have set.
	fresh := NewRunner(next, 3, RunOptions{RunID: "r2", Label: "l2"})
	check := func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			name := prefix + v.Type().Field(i).Name
			if v.Field(i).IsZero() && name != "res" {
				assert.True(t, nonZero[name], "no run above sets %s, so the test cannot see it reset", name)
			}
		}
	}
	check("", reflect.ValueOf(*fresh))
	check("res.", reflect.ValueOf(fresh.res))
}

// waitObserver is an observe.WaitObserver that does nothing.
type waitObserver struct{ observe.Nop }

func (waitObserver) WaitStart(*observe.Wait) {}
func (waitObserver) WaitEnd(*observe.Wait)   {}

// TestAttemptStorageIsOverwritten: begin writes a new attempt into the
// storage of RunOptions.Attempts field by field, so every field of a used
// slot must be overwritten, as its doc says.
func TestAttemptStorageIsOverwritten(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	slab := []Attempt{{N: 9, Start: t0, End: t0, Err: errors.New("old"), Worker: "old", Deliveries: 3}}
	v := reflect.ValueOf(slab[0])
	for i := range v.NumField() {
		require.False(t, v.Field(i).IsZero(), "the old slot has no %s", v.Type().Field(i).Name)
	}
	at := t0.Add(time.Hour)
	r := NewRunner(New("t", func(ctx context.Context, n int) (int, error) { return n, nil }, Options{}), 1,
		RunOptions{Attempts: slab[:0:1], Clock: func() time.Time { return at }})
	r.Start()
	assert.Equal(t, Attempt{N: 1, Start: at}, slab[0])
}
