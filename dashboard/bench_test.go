package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// BenchmarkRunPage measures a run page of 1,000 mapped task runs, from a
// real SQLite store over HTTP: what each open page costs the service per
// live update while the run changes (the stream renders the same part).
func BenchmarkRunPage(b *testing.B) {
	e := newEnv(b)
	sq := task.New("square", func(_ context.Context, x int) (int, error) { return x * x, nil }, task.Options{})
	xs := make([]int, 1000)
	fb := flow.New("big", flow.Options{})
	flow.Map(fb, sq, flow.Const(xs))
	f, err := fb.Build()
	require.NoError(b, err)
	_, err = f.Run(context.Background(), e.ex, flow.RunOptions{Store: e.st, RunID: "big-1"})
	require.NoError(b, err)
	srv := e.srv.URL + "/runs/big-1"
	bytes := 0
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Get(srv)
		require.NoError(b, err)
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		bytes = int(n)
	}
	b.ReportMetric(float64(bytes), "page-bytes")
}
