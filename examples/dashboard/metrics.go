package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/store"
)

// statser is an executor that counts its calls.
type statser interface{ Stats() executor.Stats }

// metrics serves Prometheus' text format, written here because this
// module has no OpenTelemetry dependency: the executor's call counters
// (executor.Stats) under the names and labels the otel module's
// ObserveExecutor gets through OpenTelemetry's Prometheus exporter (so
// the same queries work with either), and the store's runs by flow and
// state.
func metrics(st store.Store, ex statser) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs, err := st.Runs(r.Context(), store.RunFilter{})
		if err != nil {
			http.Error(w, "metrics: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		var b strings.Builder
		metric := func(name, typ, help string) {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		}
		s := ex.Stats()
		const exLabel = `flowline_executor="pool"`
		metric("flowline_executor_calls_submitted_total", "counter", "Calls the executor accepted.")
		fmt.Fprintf(&b, "flowline_executor_calls_submitted_total{%s} %d\n", exLabel, s.Submitted)
		metric("flowline_executor_calls_ended_total", "counter", "Calls the executor answered, by outcome: success, failure, timeout, canceled.")
		for _, c := range []struct {
			outcome string
			n       uint64
		}{{"success", s.Succeeded}, {"failure", s.Failed}, {"timeout", s.TimedOut}, {"canceled", s.Canceled}} {
			fmt.Fprintf(&b, "flowline_executor_calls_ended_total{flowline_call_outcome=%q,%s} %d\n", c.outcome, exLabel, c.n)
		}
		metric("flowline_executor_calls_timed_out_total", "counter", "Calls that overran their limit.")
		fmt.Fprintf(&b, "flowline_executor_calls_timed_out_total{%s} %d\n", exLabel, s.TimedOut)
		metric("flowline_executor_calls_running", "gauge", "Calls running now, abandoned ones included.")
		fmt.Fprintf(&b, "flowline_executor_calls_running{%s} %d\n", exLabel, s.Running)
		metric("flowline_executor_calls_abandoned", "gauge", "Calls answered with a soft timeout or cancellation whose work still runs.")
		fmt.Fprintf(&b, "flowline_executor_calls_abandoned{%s} %d\n", exLabel, s.Abandoned)
		ended := s.Succeeded + s.Failed + s.TimedOut + s.Canceled
		depth := max(int64(s.Submitted)-int64(ended)-(s.Running-s.Abandoned), 0)
		metric("flowline_executor_queue_depth", "gauge", "Calls accepted and not yet started or answered.")
		fmt.Fprintf(&b, "flowline_executor_queue_depth{%s} %d\n", exLabel, depth)

		count := map[[2]string]int{}
		for _, run := range runs {
			count[[2]string{run.Flow, run.State}]++
		}
		keys := make([][2]string, 0, len(count))
		for k := range count {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
		metric("flowline_store_runs", "gauge", "Runs in the store, by flow and state.")
		for _, k := range keys {
			fmt.Fprintf(&b, "flowline_store_runs{cicd_pipeline_name=%q,flowline_state=%q} %d\n", k[0], k[1], count[k])
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(b.String()))
	})
}
