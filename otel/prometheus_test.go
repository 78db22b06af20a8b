package otel_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	flotel "github.com/flowline-go/flowline/otel"
)

// TestPrometheusExport serves the metrics through OpenTelemetry's
// Prometheus exporter and reads them as a scraper does.
func TestPrometheusExport(t *testing.T) {
	reg := prometheus.NewRegistry()
	exp, err := promexp.New(promexp.WithRegisterer(reg))
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	defer mp.Shutdown(context.Background())
	obs, err := flotel.New(flotel.Options{MeterProvider: mp})
	require.NoError(t, err)
	ex := pool.New(pool.Options{Workers: 2})
	defer ex.Shutdown(context.Background())
	r, err := obs.ObserveExecutor("pool", ex)
	require.NoError(t, err)
	defer r.Unregister()

	b := flow.New("scraped", flow.Options{})
	flow.Map(b, work, flow.Const([]int{1, 2, 3}))
	f, err := b.Build()
	require.NoError(t, err)
	_, err = f.Run(context.Background(), ex, flow.RunOptions{Observer: obs})
	require.NoError(t, err)

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	text := string(body)
	for _, want := range []string{
		`flowline_attempts_total{cicd_pipeline_task_name="work",flowline_attempt_result="success",flowline_executor="pool"`,
		`flowline_executor_calls_submitted_total{flowline_executor="pool"`,
		`flowline_executor_calls_ended_total{flowline_call_outcome="success",flowline_executor="pool"`,
		`flowline_flow_run_duration_seconds_count{cicd_pipeline_name="scraped",cicd_pipeline_result="success"`,
		`flowline_task_run_duration_seconds_bucket{`,
		`flowline_attempt_queued_duration_seconds_bucket{`,
		`flowline_attempt_running_duration_seconds_sum{`,
		`flowline_executor_queue_depth{flowline_executor="pool"`,
		`flowline_executor_calls_running{flowline_executor="pool"`,
		`flowline_executor_calls_abandoned{flowline_executor="pool"`,
		`flowline_executor_calls_timed_out_total{flowline_executor="pool"`,
	} {
		assert.True(t, strings.Contains(text, want), "the scrape has %s", want)
	}
	assert.Contains(t, text, `flowline_attempts_total{cicd_pipeline_task_name="work",flowline_attempt_result="success",flowline_executor="pool",otel_scope_name="github.com/flowline-go/flowline/otel"`)
}
