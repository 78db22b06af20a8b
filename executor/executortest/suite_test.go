package executortest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/executor/pool"
)

// brokenEnv names the broken executor that TestBrokenTarget runs the suite
// against, in a child test process.
const brokenEnv = "EXECUTORTEST_BROKEN"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// broken wraps the local executor and breaks one promise of the contract.
type broken struct {
	*local.Executor
	how    string
	closed bool
	last   atomic.Value // swaps-values: the previous successful value
}

func (b *broken) Shutdown(ctx context.Context) error {
	b.closed = true
	return b.Executor.Shutdown(ctx)
}

func (b *broken) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	switch b.how {
	case "ignores-limits":
		call.Limit = 0
	case "drops-identity":
		call.RunID, call.Attempt = "", 1
	case "accepts-after-close":
		if b.closed && call.Handler != nil {
			return executor.RunInline(ctx, &call), nil
		}
	}
	f, err := b.Executor.Submit(ctx, call)
	if err != nil {
		return f, err
	}
	v, ferr, _ := f.Result() // local futures are complete on return
	var te *executor.TimeoutError
	var pe *executor.PanicError
	switch {
	case b.how == "timeout-as-cancel" && errors.As(ferr, &te):
		return executor.Completed(nil, fmt.Errorf("gave up: %w", context.Canceled)), nil
	case b.how == "late-timeouts" && errors.As(ferr, &te):
		time.Sleep(50 * time.Millisecond)
	case b.how == "swallows-errors" && ferr != nil && !errors.As(ferr, &te):
		return executor.Completed(v, nil), nil
	case b.how == "hides-panics" && errors.As(ferr, &pe):
		return executor.Completed(nil, errors.New("something went wrong")), nil
	case b.how == "swaps-values" && ferr == nil && v != nil:
		if prev := b.last.Swap(valueBox{v}); prev != nil {
			return executor.Completed(prev.(valueBox).v, nil), nil
		}
	}
	return f, nil
}

func (b *broken) Stats() executor.Stats {
	if b.how == "zero-stats" {
		return executor.Stats{}
	}
	if b.how == "unbalanced-stats" {
		st := b.Executor.Stats()
		st.Succeeded++
		return st
	}
	return b.Executor.Stats()
}

// failsFast is a bounded pool whose Submit fails at once when it is full,
// breaking the backpressure rule.
type failsFast struct{ *pool.Executor }

func (f failsFast) Submit(ctx context.Context, call executor.Call) (*executor.Future, error) {
	return f.TrySubmit(ctx, call)
}

// TestBrokenPoolTarget is the child side of TestSuiteCatchesFailFastSubmit.
func TestBrokenPoolTarget(t *testing.T) {
	if os.Getenv(brokenEnv) != "fails-fast" {
		t.Skip("runs only as a child of TestSuiteCatchesFailFastSubmit")
	}
	executortest.Run(t, executortest.Config{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			return failsFast{pool.New(pool.Options{Workers: 1, Queue: -1, Logger: logger})}
		},
		Synctest: true,
		Capacity: 1,
	})
}

// TestSuiteCatchesFailFastSubmit: a Submit that fails with ErrQueueFull
// instead of waiting for room fails G12/SubmitWaitsForRoom.
func TestSuiteCatchesFailFastSubmit(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenPoolTarget$/^G12$/^SubmitWaitsForRoom$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), brokenEnv+"=fails-fast")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the suite passed a Submit that does not wait:\n%s", out)
	assert.Contains(t, string(out), "--- FAIL: TestBrokenPoolTarget/G12/SubmitWaitsForRoom ")
	assert.Contains(t, string(out), "never fails with ErrQueueFull")
}

// valueBox lets atomic.Value hold values of different types.
type valueBox struct{ v any }

// TestBrokenStressTarget is the child side of TestStressCatchesBrokenExecutors.
func TestBrokenStressTarget(t *testing.T) {
	how := os.Getenv(brokenEnv)
	if how == "" {
		t.Skip("runs only as a child of TestStressCatchesBrokenExecutors")
	}
	executortest.Stress(t, executortest.StressConfig{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			return &broken{Executor: local.New(local.Options{Logger: logger}), how: how}
		},
		RunsOnCaller: true,
		Calls:        400,
		Submitters:   8,
	})
}

// TestStressCatchesBrokenExecutors proves that Stress's checks can fail.
func TestStressCatchesBrokenExecutors(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("child process")
	}
	for how, mustSay := range map[string]string{
		"swaps-values":     "got another call's value",
		"unbalanced-stats": "Stats at rest",
		"ignores-limits":   "want an error", // the stubborn, hostile calls succeed
	} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenStressTarget$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+how)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "Stress passed a broken executor (%s):\n%s", how, tail(string(out), 60))
			assert.Contains(t, string(out), "--- FAIL: TestBrokenStressTarget/AtTheLimit ")
			assert.Contains(t, string(out), mustSay, "Stress did not say what is wrong with %s", how)
		})
	}
}

// TestBrokenTarget is the child side of TestSuiteCatchesBrokenExecutors.
func TestBrokenTarget(t *testing.T) {
	how := os.Getenv(brokenEnv)
	if how == "" {
		t.Skip("runs only as a child of TestSuiteCatchesBrokenExecutors")
	}
	executortest.Run(t, executortest.Config{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			return &broken{Executor: local.New(local.Options{Logger: logger}), how: how}
		},
		Synctest:     true,
		RunsOnCaller: true,
	})
}

// TestSuiteCatchesBrokenExecutors proves that the suite's checks can fail:
// each broken executor must fail the checks of the promise it breaks.
func TestSuiteCatchesBrokenExecutors(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("child process")
	}
	for how, mustFail := range map[string][]string{
		"ignores-limits":      {"G3/SlowCallTimesOut", "G3/TimedOutCooperativeWorkStops", "G4/CallSeesDeadlineAndCause", "G7/StubbornCallIsAbandonedAndCounted"},
		"drops-identity":      {"G2/ResultAndArgumentsPassThrough", "G10/LogsAndIdentityTravel"},
		"timeout-as-cancel":   {"G3/SlowCallTimesOut", "G3/AnswerNeverChanges"},
		"late-timeouts":       {"G3/SlowCallTimesOut", "G7/StubbornCallIsAbandonedAndCounted"},
		"swallows-errors":     {"G2/TaskErrorComesBackUnchanged", "G2/ErrorClassIsKept", "G11/BadRawInputIsRefused"},
		"hides-panics":        {"G6/PanicIsAFailure"},
		"zero-stats":          {"Stats/CountEveryOutcome", "G7/StubbornCallIsAbandonedAndCounted", "Concurrency/ManySubmitters"},
		"accepts-after-close": {"G12/SubmitAfterShutdown"},
	} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenTarget$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+how)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "the suite passed a broken executor (%s):\n%s", how, out)
			for _, name := range mustFail {
				assert.Contains(t, string(out), "--- FAIL: TestBrokenTarget/"+name+" ",
					"the suite did not catch %q with %s", how, name)
			}
			// The checks of promises it keeps still pass: the failure is targeted.
			assert.Contains(t, string(out), "--- PASS: TestBrokenTarget/G9/TaskMaySpawn ")
			if t.Failed() {
				t.Logf("child output:\n%s", tail(string(out), 60))
			}
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
