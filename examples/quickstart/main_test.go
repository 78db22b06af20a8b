package main

// The example is a main package, so its test is in the package itself.

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/task"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestProgressLineNeverSaysAttemptZero feeds the hook the changes of a
// mapped node and its children, as flow sends them: the mapped parent
// goes Running with Attempt 0 and must never be shown as "attempt 0".
func TestProgressLineNeverSaysAttemptZero(t *testing.T) {
	p := &progress{out: os.Stdout, terminal: false, running: map[string]int{}}
	now := time.Now()
	p.change(task.Change{Task: "transform", To: task.Running, Time: now}) // the mapped parent
	assert.Equal(t, "0 done, 0 retried, 1 running: transform (mapped)", p.line())
	p.change(task.Change{Task: "transform[1]", Attempt: 1, To: task.Running, Time: now})
	p.change(task.Change{Task: "transform[0]", Attempt: 2, To: task.Running, Time: now})
	assert.Equal(t, "0 done, 0 retried, 3 running: transform[0] (attempt 2), transform[1] (attempt 1)", p.line())
	for i, label := range []string{"a", "b", "c"} {
		p.change(task.Change{Task: label, Attempt: i + 1, To: task.Running, Time: now})
	}
	assert.Equal(t, "0 done, 0 retried, 6 running: a (attempt 1), b (attempt 2), c (attempt 3), +2 more", p.line())
	assert.NotContains(t, p.line(), "attempt 0")
}
