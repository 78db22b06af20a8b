package flow

import "github.com/flowline-go/flowline/task"

// StateColors exposes the graphs' state colours to the tests.
func StateColors() map[task.State]string {
	m := map[task.State]string{}
	for s, c := range stateColors {
		m[task.State(s)] = c
	}
	return m
}
