package natsserver_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/executortest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ cluster.Server = (*natsserver.Server)(nil)

func TestServerLogsReachHclog(t *testing.T) {
	buf := &executortest.LogBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Debug})
	srv, err := natsserver.Start(natsserver.Options{Logger: logger, Name: "logged"})
	require.NoError(t, err)
	assert.Equal(t, "logged", srv.Name())
	assert.Empty(t, srv.ClientURL(), "no port unless asked")
	assert.True(t, srv.Running())
	srv.Shutdown()
	srv.Shutdown() // twice is fine
	assert.False(t, srv.Running())
	assert.Contains(t, buf.String(), "nats-server: server notice")
	assert.NotContains(t, buf.String(), "[TRACE]", "the server's debug lines need a Trace logger")
}

func TestEmbeddedStoreIsRemoved(t *testing.T) {
	// A temporary directory of this test's own: other test processes (go
	// test runs packages in parallel) start embedded servers too, and
	// counting the shared one's entries would count theirs.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // Unix
	t.Setenv("TMP", tmp)    // Windows
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "flowline-nats-*"))
	srv, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(srv.ClientURL(), "nats://127.0.0.1:"), srv.ClientURL())
	during, _ := filepath.Glob(filepath.Join(os.TempDir(), "flowline-nats-*"))
	assert.Len(t, during, len(before)+1)
	srv.Shutdown()
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "flowline-nats-*"))
	assert.Len(t, after, len(before))
}

func TestBadOptionsAreRefused(t *testing.T) {
	for name, opts := range map[string]natsserver.Options{
		"listen without a port":   {Listen: "127.0.0.1"},
		"cluster without a name":  {Cluster: &natsserver.Cluster{Listen: "127.0.0.1:0"}},
		"cluster without address": {Cluster: &natsserver.Cluster{Name: "c"}},
	} {
		_, err := natsserver.Start(opts)
		assert.Error(t, err, name)
	}
}
