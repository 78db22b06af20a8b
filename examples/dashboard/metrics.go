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

// metrics serves Prometheus' text format: the executor's call counters
// (executor.Stats) and the store's runs by flow and state.
func metrics(st store.Store, ex statser) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs, err := st.Runs(r.Context(), store.RunFilter{})
		if err != nil {
			http.Error(w, "metrics: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		var b strings.Builder
		s := ex.Stats()
		fmt.Fprintf(&b, "# HELP flowline_executor_calls_submitted_total Calls accepted by the executor's Submit.\n# TYPE flowline_executor_calls_submitted_total counter\n")
		fmt.Fprintf(&b, "flowline_executor_calls_submitted_total{executor=\"pool\"} %d\n", s.Submitted)
		fmt.Fprintf(&b, "# HELP flowline_executor_calls_total Calls that ended, by result.\n# TYPE flowline_executor_calls_total counter\n")
		for _, c := range []struct {
			result string
			n      uint64
		}{{"succeeded", s.Succeeded}, {"failed", s.Failed}, {"timed_out", s.TimedOut}, {"canceled", s.Canceled}} {
			fmt.Fprintf(&b, "flowline_executor_calls_total{executor=\"pool\",result=%q} %d\n", c.result, c.n)
		}
		fmt.Fprintf(&b, "# HELP flowline_executor_calls_running Calls running now, abandoned ones included.\n# TYPE flowline_executor_calls_running gauge\n")
		fmt.Fprintf(&b, "flowline_executor_calls_running{executor=\"pool\"} %d\n", s.Running)
		fmt.Fprintf(&b, "# HELP flowline_executor_calls_abandoned Calls answered (timed out, cancelled) whose work still runs.\n# TYPE flowline_executor_calls_abandoned gauge\n")
		fmt.Fprintf(&b, "flowline_executor_calls_abandoned{executor=\"pool\"} %d\n", s.Abandoned)
		count := map[[2]string]int{}
		for _, run := range runs {
			count[[2]string{run.Flow, run.State}]++
		}
		keys := make([][2]string, 0, len(count))
		for k := range count {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
		fmt.Fprintf(&b, "# HELP flowline_runs Runs in the store, by flow and state.\n# TYPE flowline_runs gauge\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "flowline_runs{flow=%q,state=%q} %d\n", k[0], k[1], count[k])
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(b.String()))
	})
}
