package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
)

// BenchmarkApplyCommit applies batches shaped like a durable run's group
// commits (storebench's no-op flow): tasks task runs finishing (task run,
// attempt, change) and as many starting (the same three rows), at
// synchronous=FULL. Per op: one commit.
func BenchmarkApplyCommit(b *testing.B) {
	for _, tasks := range []int{8, 32, 64} {
		b.Run(fmt.Sprintf("tasks=%d", tasks), func(b *testing.B) {
			s := openB(b, filepath.Join(b.TempDir(), "runs.db"))
			ctx := context.Background()
			require.NoError(b, s.CreateRun(ctx, store.Run{ID: "r", Flow: "f", FlowHash: "h", Owner: "o", LeaseExpires: time.Now().Add(time.Hour)}))
			batch := &store.Batch{RunID: "r", Owner: "o"}
			next, seq := 0, int64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				batch.Reset()
				now := time.Now()
				for k := range tasks { // the ones started in the previous commit end
					label := fmt.Sprintf("work[%d]", next-tasks+k)
					if next-tasks+k < 0 {
						break
					}
					seq++
					batch.TaskRuns = append(batch.TaskRuns, store.TaskRun{Label: label, State: "Success", Value: []byte("12345"), Attempts: 1, Start: now, End: now})
					batch.Attempts = append(batch.Attempts, store.Attempt{Label: label, N: 1, State: "Success", Start: now, End: now, Worker: "pool"})
					batch.Changes = append(batch.Changes, store.Change{Seq: seq, Label: label, Attempt: 1, From: "Running", To: "Success", Time: now})
				}
				for k := range tasks {
					label := fmt.Sprintf("work[%d]", next+k)
					seq++
					batch.TaskRuns = append(batch.TaskRuns, store.TaskRun{Label: label, State: "Running", Attempts: 1, Start: now})
					batch.Attempts = append(batch.Attempts, store.Attempt{Label: label, N: 1, State: "Running", Start: now})
					batch.Changes = append(batch.Changes, store.Change{Seq: seq, Label: label, Attempt: 1, From: "Pending", To: "Running", Time: now})
				}
				next += tasks
				if err := s.Apply(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func openB(b *testing.B, path string) *sqlite.Store {
	b.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s
}
