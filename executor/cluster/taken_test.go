package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/internal/envelope"
	"github.com/flowline-go/flowline/executor/executortest"
)

// takenSetup keeps taken results ttl and untaken ones 10 minutes.
func takenSetup(ttl time.Duration) cluster.Setup {
	return fast(cluster.Setup{DedupWindow: time.Second, TakenTTL: ttl, ResultTTL: 10 * time.Minute})
}

// publishOrphan publishes a call as a submitter that died right after
// would have left it: in the stream, with nobody waiting for its result.
func publishOrphan(t *testing.T, js jetstream.JetStream, setup cluster.Setup, call executor.Call) {
	t.Helper()
	input, err := call.Handler.EncodeInput(call.Input)
	require.NoError(t, err)
	id := call.ID()
	hc := envelope.Call{Key: envelope.Key(id), Task: call.Name(), Run: call.RunID, Attempt: call.Attempt}
	_, err = js.PublishMsg(context.Background(), &nats.Msg{
		Subject: "flowline.calls",
		Data:    envelope.AppendCall(nil, hc, input),
		Header:  nats.Header{envelope.HeaderMsgID: []string{id}},
	})
	require.NoError(t, err)
}

// lastRecord is the bucket's message under key, or nil once there is none.
func lastRecord(t *testing.T, js jetstream.JetStream, key string) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "KV_flowline-results")
	require.NoError(t, err)
	m, err := s.GetLastMsgForSubject(ctx, "$KV.flowline-results."+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	require.NoError(t, err)
	return m
}

// TestTakenResultsAreForgottenAfterTakenTTL: a result its submitter took
// is rewritten with a per-message TTL of TakenTTL, still answers a
// Collect until then without running again, and is gone after it; a
// result that no submitter took (its submitter died) stays.
func TestTakenResultsAreForgottenAfterTakenTTL(t *testing.T) {
	setup := takenSetup(3 * time.Second)
	ex := newExecutor(t, cluster.Options{Setup: setup})
	w := startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Setup: setup})
	js := testConn(t, ex.ClientURL())

	orphan := executor.Call{Handler: executortest.Sleep, Input: args(1, 0), RunID: "dead-submitter", Attempt: 1}
	publishOrphan(t, js, setup, orphan)
	require.Eventually(t, func() bool { return lastRecord(t, js, envelope.Key(orphan.ID())) != nil },
		10*time.Second, 5*time.Millisecond, "the worker records the orphan's result")

	call := executor.Call{Handler: executortest.Sleep, Input: args(2, 0), RunID: "taken", Attempt: 1}
	v, err := executor.Run(context.Background(), ex, call)
	require.NoError(t, err)
	assert.Equal(t, executortest.Reply{N: 2}, v)
	key := envelope.Key(call.ID())
	require.Eventually(t, func() bool {
		m := lastRecord(t, js, key)
		return m != nil && m.Header.Get("Nats-TTL") == "3s"
	}, 5*time.Second, 5*time.Millisecond, "the taken record is rewritten with TakenTTL")
	assert.Empty(t, lastRecord(t, js, envelope.Key(orphan.ID())).Header.Get("Nats-TTL"), "an untaken record is left alone")

	// Until TakenTTL ends the record answers (a Collect reads the bucket
	// first, whatever the dedup window).
	f, err := ex.Collect(context.Background(), call)
	require.NoError(t, err)
	v, err = wait(t, f)
	require.NoError(t, err)
	assert.Equal(t, executortest.Reply{N: 2}, v)
	assert.Equal(t, uint64(2), w.Stats().Ran, "the orphan and the call, each once")

	require.Eventually(t, func() bool { return lastRecord(t, js, key) == nil },
		15*time.Second, 50*time.Millisecond, "the taken record is gone after TakenTTL")
	orphanRec := lastRecord(t, js, envelope.Key(orphan.ID()))
	require.NotNil(t, orphanRec, "the untaken record stays ResultTTL")
	rec, err := envelope.DecodeResult(orphanRec.Data)
	require.NoError(t, err)
	assert.Equal(t, envelope.Output, rec.Kind)

	// A resumed submitter collects the untaken result without running it,
	// and takes it: it goes too.
	f, err = ex.Collect(context.Background(), orphan)
	require.NoError(t, err)
	v, err = wait(t, f)
	require.NoError(t, err)
	assert.Equal(t, executortest.Reply{N: 1}, v)
	assert.Equal(t, uint64(2), w.Stats().Ran, "collected, not run again")
	require.Eventually(t, func() bool { return lastRecord(t, js, envelope.Key(orphan.ID())) == nil },
		15*time.Second, 50*time.Millisecond, "the collected record is gone after TakenTTL")
}

// TestCallDeliveredAgainFindsItsTakenResult: a call delivered again
// after its result was recorded and taken (its acknowledgement was lost)
// finds the result, kept TakenTTL, and does not run again.
func TestCallDeliveredAgainFindsItsTakenResult(t *testing.T) {
	setup := takenSetup(time.Minute)
	ex := newExecutor(t, cluster.Options{Setup: setup})
	w := startWorker(t, cluster.WorkerOptions{Connection: inProcess(ex), Setup: setup})
	js := testConn(t, ex.ClientURL())

	call := executor.Call{Handler: executortest.Sleep, Input: args(3, 0), RunID: "lost-ack", Attempt: 1}
	_, err := executor.Run(context.Background(), ex, call)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		m := lastRecord(t, js, envelope.Key(call.ID()))
		return m != nil && m.Header.Get("Nats-TTL") != ""
	}, 5*time.Second, 5*time.Millisecond)
	// The same message again, as a consumer that lost the ack would
	// deliver it: marked as delivered again (Again), past the dedup window.
	time.Sleep(setup.DedupWindow + 100*time.Millisecond)
	input, err := call.Handler.EncodeInput(call.Input)
	require.NoError(t, err)
	_, err = js.PublishMsg(context.Background(), &nats.Msg{
		Subject: "flowline.calls",
		Data: envelope.AppendCall(nil, envelope.Call{Key: envelope.Key(call.ID()), Task: call.Name(), Run: call.RunID,
			Attempt: call.Attempt, Again: true}, input),
		Header: nats.Header{envelope.HeaderMsgID: []string{call.ID()}},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return w.Stats().Skipped == 1 }, 10*time.Second, 5*time.Millisecond,
		"the worker finds the taken result and skips the call")
	assert.Equal(t, uint64(1), w.Stats().Ran)
}

// TestExistingBucketWithoutTTLsKeepsTakenResults: a bucket created
// before (without per-message TTLs) is used as it is: taken results are
// not rewritten, and stay its own TTL.
func TestExistingBucketWithoutTTLsKeepsTakenResults(t *testing.T) {
	srv := startServer(t)
	js := testConn(t, srv.ClientURL())
	ctx := context.Background()
	_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "flowline-results", TTL: time.Hour})
	require.NoError(t, err)
	setup := takenSetup(2 * time.Second)
	ex := newSubmitter(t, srv, setup)
	startWorker(t, cluster.WorkerOptions{Connection: cluster.Connection{Server: srv}, Setup: setup})

	call := executor.Call{Handler: executortest.Sleep, Input: args(4, 0), RunID: "old-bucket", Attempt: 1}
	_, err = executor.Run(ctx, ex, call)
	require.NoError(t, err)
	time.Sleep(setup.TakenTTL + time.Second)
	m := lastRecord(t, js, envelope.Key(call.ID()))
	require.NotNil(t, m, "kept: the bucket takes no per-message TTLs")
	assert.Empty(t, m.Header.Get("Nats-TTL"))
}

// TestCreatedBucketTakesPerMessageTTLs: the bucket this package creates
// allows per-message TTLs and places no markers when records expire
// (markers would send every watcher an event per result).
func TestCreatedBucketTakesPerMessageTTLs(t *testing.T) {
	ex := newExecutor(t, cluster.Options{})
	js := testConn(t, ex.ClientURL())
	s, err := js.Stream(context.Background(), "KV_flowline-results")
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	assert.True(t, cfg.AllowMsgTTL)
	assert.Zero(t, cfg.SubjectDeleteMarkerTTL)
	assert.Equal(t, 10*time.Minute, cfg.MaxAge, "untaken results stay ResultTTL")
}

// TestTakenTTLIsChecked: a TakenTTL shorter than what must find a taken
// result (a deduplicated re-submission, a call delivered again after
// AckWait) is refused before anything connects.
func TestTakenTTLIsChecked(t *testing.T) {
	for name, setup := range map[string]cluster.Setup{
		"below the dedup window": {DedupWindow: time.Minute, TakenTTL: 50 * time.Second},
		"below the ack wait":     {AckWait: time.Minute, TakenTTL: 50 * time.Second},
		"below a second":         {DedupWindow: 100 * time.Millisecond, AckWait: 100 * time.Millisecond, TakenTTL: 500 * time.Millisecond},
	} {
		_, err := cluster.New(cluster.Options{Setup: setup, Connection: cluster.Connection{URL: "nats://127.0.0.1:1"}})
		assert.ErrorContains(t, err, "TakenTTL", name)
	}
}
