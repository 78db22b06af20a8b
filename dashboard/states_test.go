package dashboard

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// TestEveryStateIsCountedAndColoured guards against a task state added to
// the task package without the dashboard: every state is in stateOrder, and
// the stylesheet gives its badges flow.StateColor's colour.
func TestEveryStateIsCountedAndColoured(t *testing.T) {
	css, err := assetFS.ReadFile("assets/style.css")
	require.NoError(t, err)
	n := 0
	for s := task.State(0); !strings.HasPrefix(s.String(), "State("); s++ {
		n++
		name := s.String()
		assert.True(t, slices.Contains(stateOrder, name), "stateOrder lacks %s", name)
		assert.Contains(t, string(css), "--"+name+": "+flow.StateColor(s)+";", "style.css colour of %s", name)
		assert.Contains(t, string(css), `[data-state="`+name+`"].badge`, "style.css badge of %s", name)
	}
	assert.GreaterOrEqual(t, n, 11, "the states counted")
	assert.Len(t, stateOrder, n, "stateOrder has a state the task package does not")
}
