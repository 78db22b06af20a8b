package otel_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// TestTimesAndFailuresExactly: in a synctest bubble every time is exact:
// span timestamps, the time queued and running, the durations recorded;
// a timed-out attempt carries enforcement, stopped and abandoned, a
// failed run error.type and an error status.
func TestTimesAndFailuresExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := newTelemetry(t)
		ex := pool.New(pool.Options{Workers: 1})
		defer ex.Shutdown(context.Background())
		reg, err := tel.obs.ObserveExecutor("pool", ex)
		require.NoError(t, err)
		defer reg.Unregister()

		slow := task.New("slow", func(ctx context.Context, n int) (int, error) {
			time.Sleep(2 * time.Second)
			return n, nil
		}, task.Options{})
		stubborn := task.New("stubborn", func(ctx context.Context, _ []int) (int, error) {
			time.Sleep(10 * time.Second) // ignores its context: abandoned at its limit
			return 0, errors.New("too late to matter")
		}, task.Options{Timeout: 3 * time.Second, MaxRetries: 1})
		b := flow.New("exact", flow.Options{})
		m := flow.Map(b, slow, flow.Const([]int{1, 2}))
		flow.Add(b, stubborn, m)
		f, err := b.Build()
		require.NoError(t, err)

		start := time.Now()
		res, err := f.Run(context.Background(), ex, flow.RunOptions{Observer: tel.obs, RunID: "x"})
		require.Error(t, err)
		require.Equal(t, task.Failed, res.State)

		byName := map[string][]sdktrace.ReadOnlySpan{}
		for _, s := range tel.spans.Ended() {
			byName[s.Name()] = append(byName[s.Name()], s)
		}
		root := byName["RUN exact"][0]
		assert.Equal(t, start, root.StartTime())
		// Two 2s children one after the other (one worker), then two
		// attempts of 3s each; the first attempt's work runs on for 7s
		// and holds the only worker, so the retry waits for it.
		assert.Equal(t, start.Add(4*time.Second+3*time.Second+7*time.Second+3*time.Second), root.EndTime())
		assert.Equal(t, "failure", attr(root, "cicd.pipeline.result").AsString())
		assert.Equal(t, codes.Error, root.Status().Code)
		assert.NotEmpty(t, attr(root, "error.type").AsString())

		st := byName["stubborn"][0]
		assert.Equal(t, "timeout", attr(st, "cicd.pipeline.task.run.result").AsString())
		assert.Equal(t, "TimedOut", attr(st, "flowline.state").AsString())
		assert.Equal(t, "timeout", attr(st, "error.type").AsString())
		assert.Equal(t, int64(2), attr(st, "flowline.task.attempts").AsInt64())
		attempts := byName["stubborn attempt"]
		require.Len(t, attempts, 2)
		for i, a := range attempts {
			assert.Equal(t, int64(i+1), attr(a, "flowline.attempt").AsInt64())
			assert.Equal(t, "soft", attr(a, "flowline.enforcement").AsString())
			assert.False(t, attr(a, "flowline.stopped").AsBool())
			assert.True(t, attr(a, "flowline.abandoned").AsBool())
			assert.Equal(t, i == 0, attr(a, "flowline.attempt.retry").AsBool())
			assert.Equal(t, "timeout", attr(a, "error.type").AsString())
			require.Len(t, a.Events(), 1)
			assert.Equal(t, "started", a.Events()[0].Name)
		}
		// The retry queued 7s behind its own first attempt's abandoned work.
		assert.Equal(t, 7*time.Second, attempts[1].Events()[0].Time.Sub(attempts[1].StartTime()))
		assert.Equal(t, 3*time.Second, attempts[1].EndTime().Sub(attempts[1].Events()[0].Time))

		mt := tel.metrics(t)
		stub := attribute.String("cicd.pipeline.task.name", "stubborn")
		n, s := count(t, mt["flowline.attempt.queued.duration"], stub)
		assert.Equal(t, uint64(2), n)
		assert.Equal(t, 7.0, s)
		n, s = count(t, mt["flowline.attempt.running.duration"], stub, attribute.String("flowline.attempt.result", "timeout"))
		assert.Equal(t, uint64(2), n)
		assert.Equal(t, 6.0, s)
		n, s = count(t, mt["flowline.attempt.queued.duration"], attribute.String("cicd.pipeline.task.name", "slow"))
		assert.Equal(t, uint64(2), n)
		assert.Equal(t, 2.0, s, "the second child waited for the first")
		n, s = count(t, mt["flowline.flow.run.duration"], attribute.String("cicd.pipeline.result", "failure"))
		assert.Equal(t, uint64(1), n)
		assert.Equal(t, 17.0, s)
		ex1 := attribute.String("flowline.executor", "pool")
		assert.Equal(t, int64(2), sum(t, mt["flowline.executor.calls.timed_out"], ex1))
		assert.Equal(t, int64(1), sum(t, mt["flowline.executor.calls.abandoned"], ex1), "the retry's work still runs")
		assert.Equal(t, int64(1), sum(t, mt["flowline.executor.calls.running"], ex1), "running counts it")
		assert.Equal(t, int64(0), sum(t, mt["flowline.executor.queue.depth"], ex1))

		time.Sleep(8 * time.Second) // past the moment (7s from now) the abandoned work returns
		mt = tel.metrics(t)
		assert.Equal(t, int64(0), sum(t, mt["flowline.executor.calls.abandoned"], ex1))
		assert.Equal(t, int64(0), sum(t, mt["flowline.executor.calls.running"], ex1))
		assert.Equal(t, int64(4), sum(t, mt["flowline.executor.calls.submitted"], ex1))
	})
}
