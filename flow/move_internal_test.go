package flow

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/flowline-go/flowline/task"
)

// TestMoveResultMovesEveryField: moveResult copies a task run's record
// field by field (a whole-struct store costs a bulk write barrier), so a
// field added to task.Result and forgotten there would be lost from every
// flow's records.
func TestMoveResultMovesEveryField(t *testing.T) {
	now := time.Now()
	res := task.Result{Task: "t", RunID: "r", State: task.Failed, Value: 1, Err: errors.New("x"),
		Attempts: []task.Attempt{{N: 1}}, Start: now, End: now.Add(time.Second), Waited: time.Millisecond}
	v := reflect.ValueOf(res)
	for i := range v.NumField() {
		assert.False(t, v.Field(i).IsZero(), "the test's record has no %s", v.Type().Field(i).Name)
	}
	var dst task.Result
	moveResult(&dst, res)
	assert.Equal(t, res, dst)
}
