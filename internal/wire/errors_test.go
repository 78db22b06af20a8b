package wire_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type classed struct{ c executor.Class }

func (e classed) Error() string              { return "classed " + string(e.c) }
func (e classed) ErrorClass() executor.Class { return e.c }

// roundTrip sends err through JSON, as it travels between processes.
func roundTrip(t *testing.T, err error) error {
	t.Helper()
	data, jerr := json.Marshal(wire.EncodeError(err))
	require.NoError(t, jerr)
	var w *wire.Error
	require.NoError(t, json.Unmarshal(data, &w))
	return w.Decode("fallback")
}

func TestErrorRoundTripKeepsTypeAndFields(t *testing.T) {
	te := &executor.TimeoutError{Task: "t", Limit: time.Second, Elapsed: 1500 * time.Millisecond, Enforcement: executor.Hard, Stopped: true}
	got := roundTrip(t, fmt.Errorf("wrapped: %w", te))
	var gte *executor.TimeoutError
	require.ErrorAs(t, got, &gte)
	assert.Equal(t, te, gte)
	assert.ErrorIs(t, got, executor.ErrTimeout)

	pe := &executor.PanicError{Task: "p", Value: "boom", Stack: []byte("goroutine 1 [running]:\nmain.f()")}
	got = roundTrip(t, pe)
	var gpe *executor.PanicError
	require.ErrorAs(t, got, &gpe)
	assert.Equal(t, pe.Task, gpe.Task)
	assert.Equal(t, "boom", gpe.Value)
	assert.Equal(t, pe.Stack, gpe.Stack)

	ce := &executor.CrashError{Task: "c", Reason: "exit status 3", Stderr: "bye"}
	got = roundTrip(t, ce)
	var gce *executor.CrashError
	require.ErrorAs(t, got, &gce)
	assert.Equal(t, ce, gce)

	ie := &executor.InputError{Task: "i", Type: "main.Order", Err: errors.New("unexpected EOF")}
	got = roundTrip(t, ie)
	assert.ErrorIs(t, got, executor.ErrBadInput)
	assert.Equal(t, ie.Error(), got.Error())

	oe := &executor.OutputError{Task: "o", Type: "chan int", Err: errors.New("unsupported type")}
	got = roundTrip(t, oe)
	assert.ErrorIs(t, got, executor.ErrBadOutput)
	assert.Equal(t, oe.Error(), got.Error())

	ue := &executor.UnknownTaskError{Task: "u", Where: "worker pid 7"}
	got = roundTrip(t, ue)
	assert.ErrorIs(t, got, executor.ErrUnknownTask)
	assert.Equal(t, ue.Error(), got.Error())
}

func TestErrorRoundTripKeepsMessageAndClass(t *testing.T) {
	for _, err := range []error{
		errors.New("disk full"),
		classed{executor.ClassSkip},
		classed{executor.ClassFatal},
		executor.NewCanceledError("x", canceledContext()),
	} {
		got := roundTrip(t, err)
		assert.Equal(t, err.Error(), got.Error())
		assert.Equal(t, executor.ClassOf(err), executor.ClassOf(got))
		assert.NotErrorIs(t, got, executor.ErrTimeout)
	}
	assert.ErrorIs(t, roundTrip(t, context.Canceled), context.Canceled)
	assert.Nil(t, wire.EncodeError(nil))
	assert.NoError(t, (*wire.Error)(nil).Decode("x"))
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// FuzzDecodeError feeds arbitrary bytes, as a broken or hostile peer might
// send, through the decoder: it must never panic, and whatever decodes must
// keep its class and the task it names.
func FuzzDecodeError(f *testing.F) {
	f.Add([]byte(`{"class":"timeout","task":"t","limit":1000,"enforcement":"hard"}`))
	f.Add([]byte(`{"class":"panic","value":"boom","stack":"x"}`))
	f.Add([]byte(`{"class":"weird","message":"?"}`))
	f.Add([]byte(`{"message":"no class"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var w *wire.Error
		if json.Unmarshal(data, &w) != nil || w == nil {
			return
		}
		err := w.Decode("fallback")
		require.Error(t, err)
		_ = err.Error()
		want := w.Class
		if want == "" {
			want = executor.ClassFailure
		}
		assert.Equal(t, want, executor.ClassOf(err))
	})
}

func TestReplayLogKeepsLevelMessageModuleAndPairs(t *testing.T) {
	var remote bytes.Buffer
	hclog.New(&hclog.LoggerOptions{Output: &remote, JSONFormat: true, Level: hclog.Trace}).
		Named("task").Warn("disk almost full", "attempt", 2, "free", 0.5, "run", "r1")

	var local bytes.Buffer
	l := hclog.New(&hclog.LoggerOptions{Output: &local, JSONFormat: true, Level: hclog.Trace})
	wire.ReplayLog(l, remote.Bytes())
	var m map[string]any
	require.NoError(t, json.Unmarshal(local.Bytes(), &m))
	assert.Equal(t, "warn", m["@level"])
	assert.Equal(t, "disk almost full", m["@message"])
	assert.Equal(t, "task", m["@module"])
	assert.EqualValues(t, 2, m["attempt"])
	assert.EqualValues(t, 0.5, m["free"])
	assert.Equal(t, "r1", m["run"])

	local.Reset()
	wire.ReplayLog(l, []byte("not json\n"))
	require.NoError(t, json.Unmarshal(local.Bytes(), &m))
	assert.Equal(t, "warn", m["@level"])
	assert.Equal(t, "not json", m["line"], "an undecodable line is quoted, not dropped")
}

func TestTasksOwnDeadlineIsAFailureAcrossTheWire(t *testing.T) {
	// A task's own deadline (an HTTP client's, say) is not the executor's
	// timeout: it keeps its message and comes back as a failure.
	own := fmt.Errorf("GET https://example.invalid/: %w", context.DeadlineExceeded)
	got := roundTrip(t, own)
	assert.Equal(t, executor.ClassFailure, executor.ClassOf(got))
	assert.Equal(t, own.Error(), got.Error(), "the message is kept")
	assert.NotErrorIs(t, got, executor.ErrTimeout)
	var te *executor.TimeoutError
	assert.False(t, errors.As(got, &te), "no TimeoutError is made up")
}

func TestGoexitKeepsItsIdentityAcrossTheWire(t *testing.T) {
	h := executor.NewHandler("quitter", func(ctx context.Context, _ int) (int, error) {
		runtime.Goexit()
		return 0, nil
	}, nil)
	_, err := h.RunIsolated(context.Background(), 0)
	require.ErrorIs(t, err, executor.ErrGoexit)
	got := roundTrip(t, err)
	var pe *executor.PanicError
	require.ErrorAs(t, got, &pe)
	assert.Equal(t, "quitter", pe.Task)
	assert.ErrorIs(t, got, executor.ErrGoexit)
	assert.Equal(t, executor.ClassPanic, executor.ClassOf(got))
	assert.Equal(t, err.Error(), got.Error())
}

func TestATimeoutClassOfTheTasksOwnIsNotMadeATimeoutError(t *testing.T) {
	got := roundTrip(t, classed{executor.ClassTimeout})
	var te *executor.TimeoutError
	assert.False(t, errors.As(got, &te), "no limit or elapsed time is made up")
	assert.Equal(t, executor.ClassTimeout, executor.ClassOf(got))
	assert.Equal(t, "classed timeout", got.Error())
}
