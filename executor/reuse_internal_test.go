package executor

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestFutureResetLeavesNothing: Reset zeroes a Future field by field (a
// whole-struct store costs a bulk write barrier), so a field added to
// Future and forgotten there would carry one call's answer into the next.
// A Future completed with every field set must be the zero Future after
// Reset. Complete itself drops the callbacks, so only the fields a
// completed Future keeps are checked for being set first.
func TestFutureResetLeavesNothing(t *testing.T) {
	var f Future
	p := Promise{f: &f}
	_ = f.Done()
	f.OnDone(func() {})
	f.OnDone(func() {})
	p.SetWorker("w")
	p.SetDeliveries(2)
	p.SetStarted(time.Now())
	p.Complete(1, errors.New("x"))

	v := reflect.ValueOf(&f).Elem()
	for i := range v.NumField() {
		switch name := v.Type().Field(i).Name; name {
		case "mu", "first", "more":
		default:
			assert.False(t, v.Field(i).IsZero(), "the completed Future has no %s, so the test cannot see it reset", name)
		}
	}
	f.Reset()
	for i := range v.NumField() {
		assert.True(t, v.Field(i).IsZero(), "Reset leaves %s", v.Type().Field(i).Name)
	}
}
