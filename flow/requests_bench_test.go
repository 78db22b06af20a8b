package flow_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/postgres/pgtest"
	"github.com/flowline-go/flowline/store/sqlite"
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
