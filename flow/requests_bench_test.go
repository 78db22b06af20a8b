package flow_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

// The cost of one look for a cancel request: a durable run makes one
// every RunOptions.CancelPoll (one second by default), so its share of a
// core is this time per second. docs/durability.md has the figures.

func benchPoll(b *testing.B, st store.Store) {
	ctx := context.Background()
	if err := st.CreateRun(ctx, store.Run{ID: "r1", Flow: "f", FlowHash: "h", Owner: "me"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := st.Run(ctx, "r1")
		if err != nil || !r.CancelRequested.IsZero() {
			b.Fatal(err)
		}
	}
}

func BenchmarkCancelPollSQLite(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "runs.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchPoll(b, st)
}

func BenchmarkCancelPollPostgres(b *testing.B) {
	st, err := postgres.Open(context.Background(), pgtest.Schema(b), postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchPoll(b, st)
}

// BenchmarkDurableCancelPoll runs a durable mapped flow of 2,000 no-op
// children on a pool of 8 with SQLite, alternately without cancel polling
// and polling every 10 ms (a hundred times the default rate), so that the
// machine's drift hits both alike, and reports each one's mean and their
// ratio: what polling costs a run.
func BenchmarkDurableCancelPoll(b *testing.B) {
	noop := task.New("noop", func(_ context.Context, x int) (int, error) { return x, nil }, task.Options{})
	fan := task.New("fan", func(_ context.Context, n int) ([]int, error) { return make([]int, n), nil }, task.Options{})
	fb := flow.New("fan", flow.Options{})
	flow.Map(fb, noop, flow.Add(fb, fan, flow.Const(2000)))
	f, err := fb.Build()
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "runs.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ex := pool.New(pool.Options{Workers: 8})
	defer ex.Shutdown(context.Background())
	var took [2]time.Duration
	for b.Loop() {
		for i, poll := range []time.Duration{-1, 10 * time.Millisecond} {
			start := time.Now()
			if _, err := f.Run(context.Background(), ex, flow.RunOptions{Store: st, CancelPoll: poll}); err != nil {
				b.Fatal(err)
			}
			took[i] += time.Since(start)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(took[0].Milliseconds())/n, "ms/run-never")
	b.ReportMetric(float64(took[1].Milliseconds())/n, "ms/run-10ms")
	b.ReportMetric(float64(took[1])/float64(took[0]), "ratio")
}
