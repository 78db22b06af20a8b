package cluster_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientOnlyProgramLinksNoServer proves that a program connecting to
// an external NATS links no NATS server code: neither this package nor a
// whole client-only program (a submitter and a worker) depends on
// nats-server; only natsserver does.
func TestClientOnlyProgramLinksNoServer(t *testing.T) {
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to list dependencies")
	const mod = "github.com/flowline-go/flowline/executor/cluster"
	out, err := exec.Command(goTool, "list", "-deps", mod, mod+"/internal/clientonly").CombinedOutput()
	require.NoError(t, err, string(out))
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/nats-io/nats.go", "the listing is not what it should be")
	for _, d := range deps {
		assert.False(t, strings.HasPrefix(d, "github.com/nats-io/nats-server"), "a client-only program links %s", d)
	}

	// The check can fail: natsserver does link the server.
	out, err = exec.Command(goTool, "list", "-deps", mod+"/natsserver").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, strings.Fields(string(out)), "github.com/nats-io/nats-server/v2/server")
}
