// Package executortest is the conformance suite that every flowline
// executor passes: the guarantees G1-G12 of the executor.TimeoutHandler
// contract, checked with the same test code for every executor, as far as
// the executor's enforcement (soft or hard) and isolation (in process or
// out of process) make them apply.
//
// An implementation runs it with a few lines:
//
//	func TestConformance(t *testing.T) {
//		executortest.Run(t, executortest.Config{
//			New: func(t *testing.T, logger hclog.Logger) executor.Executor {
//				return mypkg.New(mypkg.Options{Logger: logger})
//			},
//			Synctest: true, // all goroutines and timers live in this process
//		})
//	}
//
// An out-of-process executor must make its workers serve Registry (call its
// worker hook with Registry() from the test binary's TestMain) and set
// OutOfProcess; the suite then also checks unknown tasks and unencodable
// results, and with Crashable, a task's exit or death by signal. A hard executor's checks run in real time and use
// real process groups; a soft executor's run inside a testing/synctest
// bubble when Synctest is set, so that every timing is exact and a test
// takes microseconds of real time.
//
// What the suite expects beyond the executor package's documentation:
//   - Submit of a call whose context has already ended is accepted and
//     completes with an error matching context.Canceled.
//   - A soft executor logs each abandoned call exactly once, at Warn level,
//     with "task", "run" and "attempt" keys, on the logger given to New.
//   - An out-of-process executor reports a call that its worker does not
//     know as an *executor.UnknownTaskError, in its Future.
package executortest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/flowline-go/flowline/executor"
)

// Config describes the executor under test.
type Config struct {
	// New returns a fresh executor whose own messages go to logger. Each
	// check makes its own executor and shuts it down. Required.
	New func(t *testing.T, logger hclog.Logger) executor.Executor

	// Synctest runs each check of a soft executor inside a testing/synctest
	// bubble: time is fake, so timings are checked exactly. Set it when all
	// of the executor's goroutines and timers live in the test process.
	Synctest bool

	// OutOfProcess says that calls cross a process boundary: errors keep
	// their message and class but not their identity, results are encoded,
	// and workers can be unaware of a task. Abandoned soft work then lives
	// in the worker's process, so the checks that count it here are skipped.
	OutOfProcess bool

	// Crashable says that tasks run in worker processes that the executor
	// can lose and replace: the suite checks that a task's os.Exit or
	// SIGKILL fails only its own call. It requires OutOfProcess.
	Crashable bool

	// RunsOnCaller says that a call without a limit runs on the goroutine
	// that submits it (executor/local): a task's runtime.Goexit then ends
	// that goroutine, as in plain Go, instead of being answered with a
	// *executor.PanicError. The suite checks the Stats still balance.
	RunsOnCaller bool

	// Capacity, when positive, is how many calls the executor holds at
	// once (running plus queued) before Submit has to wait for room: the
	// suite then checks the backpressure rule of executor.TimeoutHandler
	// (Submit waits while its context allows and returns exactly ctx.Err(),
	// never ErrQueueFull; TrySubmit, if offered, fails at once with
	// ErrQueueFull). Zero skips that check.
	Capacity int

	// SkipGoexit skips the checks of a task that calls runtime.Goexit. It
	// is transitional, for executors whose workers do not answer Goexit
	// yet (their worker loop must run tasks with Handler.RunIsolated or
	// Handler.RunOnGoexit); it will be removed once every executor does.
	SkipGoexit bool

	// SoftSlack is how late after the limit a soft executor may answer a
	// timed-out call ("within a few milliseconds"). Zero means 5ms, which
	// is exact in a synctest bubble; an executor whose answers cross a
	// network in real time may need more, and should say why.
	SoftSlack time.Duration

	// Grace is the grace period the suite puts in its calls to a hard
	// executor. Zero means 300ms.
	Grace time.Duration
}

// Run runs the whole suite against the executor that cfg describes.
func Run(t *testing.T, cfg Config) {
	require.NotNil(t, cfg.New, "executortest: Config.New is required")
	if cfg.Grace <= 0 {
		cfg.Grace = 300 * time.Millisecond
	}
	if cfg.SoftSlack <= 0 {
		cfg.SoftSlack = 5 * time.Millisecond
	}
	require.False(t, cfg.Crashable && !cfg.OutOfProcess, "executortest: Crashable requires OutOfProcess")
	probe := cfg.New(t, hclog.NewNullLogger())
	enf := probe.Enforcement()
	require.NoError(t, probe.Shutdown(context.Background()))
	require.Contains(t, []executor.Enforcement{executor.Soft, executor.Hard}, enf, "Enforcement()")
	_, runner := probe.(executor.Runner)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.only != 0 && enf != c.only {
				t.Skipf("applies to %v executors; this one is %v", c.only, enf)
			}
			if c.outOfProcess && !cfg.OutOfProcess {
				t.Skip("applies to out-of-process executors only")
			}
			if c.inProcess && cfg.OutOfProcess {
				t.Skip("counts abandoned work, which an out-of-process executor's workers own")
			}
			if c.goexit && cfg.SkipGoexit {
				t.Skip("Config.SkipGoexit: this executor does not answer runtime.Goexit yet")
			}
			if c.crashable && !cfg.Crashable {
				t.Skip("applies to executors whose worker processes can crash")
			}
			cfg.check(t, enf, false, c.fn)
			if runner {
				// An executor.Runner's Run must answer as Submit and
				// Wait do: every check again, its calls through Run.
				t.Run("via-Run", func(t *testing.T) { cfg.check(t, enf, true, c.fn) })
			}
		})
	}
}

// A check is one scenario of the suite.
type check struct {
	name         string
	only         executor.Enforcement // zero: any
	outOfProcess bool                 // out-of-process executors only
	inProcess    bool                 // in-process executors only
	crashable    bool                 // executors whose workers can crash
	goexit       bool                 // a task calls runtime.Goexit (see Config.SkipGoexit)
	fn           func(t *testing.T, s *session)
}

// session is what a check works with: the executor, captured logs, and
// helpers that know whether time is fake.
type session struct {
	cfg    Config
	ex     executor.Executor
	hard   bool
	exLog  *LogBuffer // the executor's own logger
	taskLg *LogBuffer // the calls' logger
	dir    string
	calls  atomic.Int64 // numbers the calls' run ids
	viaRun bool         // run calls with the executor's Runner.Run
}

func (cfg Config) check(t *testing.T, enf executor.Enforcement, viaRun bool, fn func(t *testing.T, s *session)) {
	body := func(t *testing.T) {
		s := &session{cfg: cfg, exLog: &LogBuffer{}, taskLg: &LogBuffer{}, dir: t.TempDir(), viaRun: viaRun}
		s.ex = cfg.New(t, s.exLog.Logger())
		require.NotNil(t, s.ex)
		require.Equal(t, enf, s.ex.Enforcement())
		s.hard = enf == executor.Hard
		// Shut down in a cleanup, so that a failed check does not leave the
		// executor's goroutines behind (inside a bubble, cleanups run in it).
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			assert.NoError(t, s.ex.Shutdown(ctx), "Shutdown after the check")
			assert.Equal(t, int64(0), s.ex.Stats().Running, "calls still running after Shutdown")
			assert.Equal(t, int64(0), s.ex.Stats().Abandoned, "abandoned calls after Shutdown")
		})
		fn(t, s)
	}
	if cfg.Synctest && enf == executor.Soft {
		synctest.Test(t, body)
		return
	}
	body(t)
}

// call returns a Call of h with args and limit, logging to the session's
// task logger, with a run id unique to the call: run, task and attempt
// identify an attempt (executor.Call), and an executor may deduplicate
// calls on them, so distinct calls must not share them.
func (s *session) call(t *testing.T, h *executor.Handler, args Args, limit time.Duration) executor.Call {
	return executor.Call{
		Handler: h,
		Input:   args,
		RunID:   fmt.Sprintf("%s.%d", strings.ReplaceAll(t.Name(), "/", "."), s.calls.Add(1)),
		Attempt: 1,
		Limit:   limit,
		Grace:   s.cfg.Grace,
		Logger:  s.taskLg.Logger(),
	}
}

// result is what one call gave back.
type result struct {
	value   any
	err     error
	elapsed time.Duration
}

// run submits call under ctx and waits for its future.
func (s *session) run(t *testing.T, ctx context.Context, call executor.Call) result {
	t.Helper()
	start := time.Now()
	wait := 2 * time.Minute
	if s.cfg.Synctest && !s.hard {
		// Fake time: the bound must outlast the suite's longest call (an
		// hour in checkNoLimit) for executors that answer asynchronously.
		wait = 2 * time.Hour
	}
	if r, ok := s.ex.(executor.Runner); ok && s.viaRun {
		var res result
		done := make(chan struct{})
		go func() {
			defer close(done)
			res.value, res.err = r.Run(ctx, call)
			res.elapsed = time.Since(start)
		}()
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatalf("Run did not return within %v", wait)
		}
		return res
	}
	f, err := s.ex.Submit(ctx, call)
	require.NoError(t, err, "Submit")
	require.NotNil(t, f)
	wctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	v, err := f.Wait(wctx)
	// A completed future answers at once, and always the same.
	v2, err2, ok := f.Result()
	require.True(t, ok, "the future did not complete within %v", wait)
	assert.Equal(t, v, v2)
	assert.Equal(t, err, err2)
	return result{value: v, err: err, elapsed: time.Since(start)}
}

// reply returns r's value as a Reply.
func reply(t *testing.T, r result) Reply {
	t.Helper()
	require.NoError(t, r.err)
	rep, ok := r.value.(Reply)
	require.Truef(t, ok, "result is a %T, not a Reply", r.value)
	return rep
}

// timeoutOf checks that err is a timeout of the call and returns it.
func (s *session) timeoutOf(t *testing.T, err error, call executor.Call) *executor.TimeoutError {
	t.Helper()
	require.ErrorIs(t, err, executor.ErrTimeout)
	require.NotErrorIs(t, err, context.Canceled)
	var te *executor.TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, call.Name(), te.Task)
	assert.Equal(t, call.Limit, te.Limit)
	assert.Equal(t, s.ex.Enforcement(), te.Enforcement)
	assert.Equal(t, executor.ClassTimeout, executor.ClassOf(err))
	return te
}

// settle lets in-process work reach a quiet point: in a bubble, until every
// goroutine is blocked; in real time, for d.
func (s *session) settle(d time.Duration) {
	if s.cfg.Synctest && !s.hard {
		time.Sleep(d)
		synctest.Wait()
		return
	}
	time.Sleep(d)
}

// hardSlack is what the suite allows a hard executor beyond its bound, for
// a loaded machine; it is added to limit + grace, never to limit alone.
const hardSlack = 2 * time.Second

var checks = []check{
	{name: "G1/NoLimitRunsToCompletion", fn: checkNoLimit},
	{name: "G1/NegativeLimitIsNoLimit", fn: checkNegativeLimit},
	{name: "G2/ResultAndArgumentsPassThrough", fn: checkPassThrough},
	{name: "G2/TaskErrorComesBackUnchanged", fn: checkTaskError},
	{name: "G2/ErrorClassIsKept", fn: checkErrorClass},
	{name: "G3/SlowCallTimesOut", fn: checkSlowCallTimesOut},
	{name: "G3/EachCallGetsItsOwnDeadline", only: executor.Soft, fn: checkOwnDeadline},
	{name: "G3/TimedOutCooperativeWorkStops", fn: checkCooperativeStops},
	{name: "G3/AnswerNeverChanges", fn: checkAnswerNeverChanges},
	{name: "G4/CallSeesDeadlineAndCause", fn: checkDeadlineAndCause},
	{name: "G5/CancelIsNotTimeout", fn: checkCancelCooperative},
	{name: "G5/CancelStubbornCall", fn: checkCancelStubborn},
	{name: "G5/CancelledBeforeSubmit", fn: checkCancelledBeforeSubmit},
	{name: "G6/PanicIsAFailure", fn: checkPanic},
	{name: "G6/ExitFailsOneCall", crashable: true, fn: checkExit},
	{name: "G6/SignalDeathFailsOneCall", crashable: true, fn: checkSignalDeath},
	{name: "G7/StubbornCallIsAbandonedAndCounted", only: executor.Soft, inProcess: true, fn: checkAbandoned},
	{name: "G7/ShutdownNamesStuckCalls", only: executor.Soft, inProcess: true, fn: checkShutdownNamesStuck},
	{name: "G8/TimedOutProcessIsDead", only: executor.Hard, fn: checkHardKill},
	{name: "G8/GrandchildIgnoringTermIsKilled", only: executor.Hard, fn: checkGrandchild},
	{name: "G8/TermHonouredWithinGrace", only: executor.Hard, fn: checkTermHonoured},
	{name: "G9/TaskMaySpawn", fn: checkSpawn},
	{name: "G10/LogsAndIdentityTravel", fn: checkLogs},
	{name: "G11/BadRawInputIsRefused", fn: checkBadRawInput},
	{name: "G11/WrongInputTypeIsRefused", fn: checkWrongInputType},
	{name: "G11/UnknownTask", outOfProcess: true, fn: checkUnknownTask},
	{name: "G11/UnencodableResult", outOfProcess: true, fn: checkBadOutput},
	{name: "G12/SubmitAfterShutdown", fn: checkSubmitAfterShutdown},
	{name: "G12/NilHandlerIsRefused", fn: checkNilHandler},
	{name: "Stats/CountEveryOutcome", fn: checkStats},
	{name: "Concurrency/ManySubmitters", fn: checkManySubmitters},
	{name: "G3/LateIsDecidedAtTheDeadline", fn: checkLateRule},
	{name: "G6/GoexitIsAPanic", goexit: true, fn: checkGoexit},
	{name: "G5/CallersDeadlineIsACancellation", fn: checkCallersDeadline},
	{name: "G12/SubmitWaitsForRoom", fn: checkBackpressure},
	{name: "Classes/SameClassOnEveryExecutor", fn: checkClasses},
}

func checkNoLimit(t *testing.T, s *session) {
	d := 300 * time.Millisecond
	if s.cfg.Synctest && !s.hard {
		d = time.Hour // fake time: an hour costs nothing
	}
	call := s.call(t, Sleep, Args{N: 7, Sleep: d}, 0)
	r := s.run(t, context.Background(), call)
	assert.Equal(t, Reply{N: 7}, reply(t, r))
	assert.GreaterOrEqual(t, r.elapsed, d)

	// No limit means no deadline in the task's context.
	rep := reply(t, s.run(t, context.Background(), s.call(t, Echo, Args{N: 1}, 0)))
	assert.False(t, rep.HasDeadline, "a call without a limit has no deadline")
}

func checkNegativeLimit(t *testing.T, s *session) {
	rep := reply(t, s.run(t, context.Background(), s.call(t, Echo, Args{N: 2}, -time.Second)))
	assert.Equal(t, 4, rep.N)
	assert.False(t, rep.HasDeadline, "a negative limit is no limit")
}

func checkPassThrough(t *testing.T, s *session) {
	for _, limit := range []time.Duration{0, time.Minute} {
		rep := reply(t, s.run(t, context.Background(), s.call(t, Echo, Args{N: 21, Text: "héllo\n"}, limit)))
		assert.Equal(t, 42, rep.N)
		assert.Equal(t, "héllo\n", rep.Text)
		assert.Equal(t, limit > 0, rep.HasDeadline)
	}
	call := s.call(t, Whoami, Args{}, time.Minute)
	call.RunID, call.Attempt = "run-42", 3
	rep := reply(t, s.run(t, context.Background(), call))
	assert.Equal(t, executor.Identity{Task: Whoami.Name(), RunID: "run-42", Attempt: 3}, rep.Identity)

	call.Attempt = 0
	rep = reply(t, s.run(t, context.Background(), call))
	assert.Equal(t, 1, rep.Identity.Attempt, "attempt 0 is attempt 1")
}

func checkTaskError(t *testing.T, s *session) {
	for _, limit := range []time.Duration{0, time.Minute} {
		r := s.run(t, context.Background(), s.call(t, Fail, Args{N: 5, Text: "disk full"}, limit))
		require.Error(t, r.err)
		assert.Equal(t, "disk full: "+ErrTask.Error(), r.err.Error(), "the message is kept")
		assert.Equal(t, executor.ClassFailure, executor.ClassOf(r.err))
		assert.NotErrorIs(t, r.err, executor.ErrTimeout)
		if !s.cfg.OutOfProcess {
			assert.ErrorIs(t, r.err, ErrTask, "in process the error keeps its identity")
			assert.Equal(t, Reply{N: 5}, r.value, "in process the result comes back with the error")
		}
	}
}

func checkErrorClass(t *testing.T, s *session) {
	r := s.run(t, context.Background(), s.call(t, Skip, Args{Text: "nothing to do"}, time.Minute))
	require.Error(t, r.err)
	assert.Equal(t, "nothing to do", r.err.Error())
	assert.Equal(t, executor.ClassSkip, executor.ClassOf(r.err))
}

func checkSlowCallTimesOut(t *testing.T, s *session) {
	limit := 50 * time.Millisecond
	if s.hard {
		limit = 300 * time.Millisecond
	}
	for _, coop := range []bool{true, false} {
		call := s.call(t, Sleep, Args{N: 1, Sleep: time.Hour, Cooperative: coop}, limit)
		if !coop && s.cfg.Synctest && !s.hard {
			call.Input = Args{N: 1, Sleep: 10 * time.Second} // abandoned work must end for the bubble to end
		}
		r := s.run(t, context.Background(), call)
		te := s.timeoutOf(t, r.err, call)
		assert.Nil(t, r.value)
		assert.GreaterOrEqual(t, te.Elapsed, limit, "cooperative=%v", coop)
		assert.GreaterOrEqual(t, r.elapsed, limit, "cooperative=%v", coop)
		if s.hard {
			assert.True(t, te.Stopped, "a hard timeout is reported once the work is dead")
			assert.Less(t, r.elapsed, limit+s.cfg.Grace+hardSlack, "cooperative=%v", coop)
		} else {
			assert.LessOrEqual(t, te.Elapsed, limit+s.cfg.SoftSlack, "cooperative=%v", coop)
			assert.LessOrEqual(t, r.elapsed, limit+s.cfg.SoftSlack, "cooperative=%v", coop)
		}
	}
}

// checkOwnDeadline submits calls in a row with longer and shorter limits,
// some overrunning, some returning just in time: each times out at its own
// limit, never at an earlier call's. Executors that arm one timer per
// worker lazily (left alone for a later deadline, re-armed when it fires
// early) are where this breaks. Cooperative tasks return at once when
// answered, so the next call finds the same worker free. Exact in a
// bubble; on the real clock the unit is large enough for SoftSlack.
func checkOwnDeadline(t *testing.T, s *session) {
	u := time.Millisecond
	if !s.cfg.Synctest {
		u = max(5*time.Millisecond, s.cfg.SoftSlack/5) // 10u, the margin of the in-time step, is twice SoftSlack
	}
	steps := []struct {
		name         string
		limit, sleep time.Duration // the task sleeps cooperatively: it returns early if its context ends
		late         bool
	}{
		{"a long limit, returns at once", time.Hour, 0, false},
		{"a shorter limit after a longer one, overruns", 10 * u, time.Hour, true},
		{"a short limit, returns at once", 10 * u, 0, false},
		{"the timer fires for the last deadline, this call goes on", 50 * u, 30 * u, false},
		{"a longer limit, overruns", 70 * u, time.Hour, true},
		{"the same limit again, returns in time", 70 * u, 60 * u, false},
		{"the same limit again, overruns", 70 * u, time.Hour, true},
	}
	for _, st := range steps {
		call := s.call(t, Sleep, Args{N: 1, Sleep: st.sleep, Cooperative: true}, st.limit)
		r := s.run(t, context.Background(), call)
		if !st.late {
			assert.NoError(t, r.err, st.name)
			if s.cfg.Synctest {
				assert.Equal(t, st.sleep, r.elapsed, st.name)
			} else {
				assert.GreaterOrEqual(t, r.elapsed, st.sleep, st.name)
			}
			continue
		}
		te := s.timeoutOf(t, r.err, call)
		if s.cfg.Synctest {
			assert.Equal(t, st.limit, te.Elapsed, st.name)
		} else {
			assert.GreaterOrEqual(t, te.Elapsed, st.limit, st.name)
			assert.LessOrEqual(t, te.Elapsed, st.limit+s.cfg.SoftSlack, st.name)
		}
		s.settle(u) // the cooperative task returns: its worker is free for the next call
	}
}

// lines counts the lines of a file; a missing file has none.
func lines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(t, err)
	return bytes.Count(data, []byte("\n"))
}

func checkCooperativeStops(t *testing.T, s *session) {
	path := filepath.Join(s.dir, "ticks")
	tick, limit := 10*time.Millisecond, 100*time.Millisecond
	args := Args{Path: path, Tick: tick, Sleep: time.Hour, Cooperative: true}
	if s.hard {
		// Out of process, prove the kill: the work ignores its context and
		// SIGTERM, so only the process group's death stops it.
		args.Cooperative, args.IgnoreTerm, limit = false, true, 300*time.Millisecond
	}
	call := s.call(t, Append, args, limit)
	r := s.run(t, context.Background(), call)
	s.timeoutOf(t, r.err, call)
	s.settle(2 * tick)
	n := lines(t, path)
	assert.Positive(t, n, "the task ran before its limit")
	s.settle(20 * tick)
	assert.Equal(t, n, lines(t, path), "the file kept growing after the timeout: the call did not stop")
}

func checkAnswerNeverChanges(t *testing.T, s *session) {
	limit := 20 * time.Millisecond
	if s.hard {
		limit = 200 * time.Millisecond
	}
	call := s.call(t, Sleep, Args{N: 9, Sleep: 4 * limit}, limit)
	f, err := s.ex.Submit(context.Background(), call)
	require.NoError(t, err)
	_, err = f.Wait(context.Background())
	s.timeoutOf(t, err, call)
	s.settle(8 * limit) // the abandoned work (if any) returns meanwhile
	v, err2, ok := f.Result()
	require.True(t, ok)
	assert.Nil(t, v)
	assert.Same(t, err, err2, "a late result replaced the timeout")
}

func readDeadlineReports(t *testing.T, path string) []DeadlineReport {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []DeadlineReport
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var r DeadlineReport
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		out = append(out, r)
	}
	return out
}

func checkDeadlineAndCause(t *testing.T, s *session) {
	path := filepath.Join(s.dir, "deadline")
	limit := 50 * time.Millisecond
	if s.hard {
		limit = 300 * time.Millisecond
	}
	call := s.call(t, Deadline, Args{Path: path}, limit)
	before := time.Now()
	r := s.run(t, context.Background(), call)
	s.timeoutOf(t, r.err, call)
	s.settle(50 * time.Millisecond) // let the task write its second line
	reps := readDeadlineReports(t, path)
	require.NotEmpty(t, reps, "the task did not start")
	assert.True(t, reps[0].HasDeadline, "the call's context carries no deadline")
	slack := s.cfg.SoftSlack
	if s.hard || !s.cfg.Synctest || s.cfg.OutOfProcess {
		slack = time.Second // clocks of two processes, a loaded machine
	}
	assert.WithinDuration(t, before.Add(limit), reps[0].Deadline, slack, "the deadline is not start + limit")
	if len(reps) < 2 {
		// A hard executor may kill the process before the task sees its
		// context end; in process, the task must see it.
		require.True(t, s.hard, "the task never saw its context end")
		return
	}
	assert.True(t, reps[1].Ended)
	assert.Equal(t, context.DeadlineExceeded.Error(), reps[1].Err, "ctx.Err() after the deadline")
	assert.True(t, reps[1].IsTimeout, "context.Cause is %q, not a *TimeoutError", reps[1].Cause)
	assert.Equal(t, s.ex.Enforcement().String(), reps[1].Enforcement)
}

func checkCancelCooperative(t *testing.T, s *session) {
	for _, limit := range []time.Duration{0, time.Hour} {
		ctx, cancel := context.WithCancel(context.Background())
		stop := time.AfterFunc(50*time.Millisecond, cancel)
		call := s.call(t, Sleep, Args{Sleep: time.Hour, Cooperative: true}, limit)
		r := s.run(t, ctx, call)
		stop.Stop()
		cancel()
		require.ErrorIs(t, r.err, context.Canceled, "limit %v", limit)
		assert.NotErrorIs(t, r.err, executor.ErrTimeout, "a cancellation is not a timeout")
		var te *executor.TimeoutError
		assert.False(t, errors.As(r.err, &te), "a cancellation is not a *TimeoutError")
		assert.Equal(t, executor.ClassCanceled, executor.ClassOf(r.err))
		assert.Less(t, r.elapsed, 50*time.Millisecond+s.cfg.Grace+hardSlack)
	}
}

func checkCancelStubborn(t *testing.T, s *session) {
	path := filepath.Join(s.dir, "ticks")
	tick := 10 * time.Millisecond
	args := Args{Path: path, Tick: tick, Sleep: 10 * time.Second}
	if s.hard {
		args.IgnoreTerm = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := time.AfterFunc(100*time.Millisecond, cancel)
	defer stop.Stop()
	// The limit is far away: only the cancellation can end the call, and a
	// soft executor must answer without waiting for the stubborn work.
	call := s.call(t, Append, args, time.Hour)
	r := s.run(t, ctx, call)
	require.ErrorIs(t, r.err, context.Canceled)
	assert.NotErrorIs(t, r.err, executor.ErrTimeout)
	if s.hard {
		assert.Less(t, r.elapsed, 100*time.Millisecond+s.cfg.Grace+hardSlack)
		s.settle(2 * tick)
		n := lines(t, path)
		s.settle(20 * tick)
		assert.Equal(t, n, lines(t, path), "a cancelled call of a hard executor kept running")
	} else {
		assert.LessOrEqual(t, r.elapsed, 100*time.Millisecond+s.cfg.SoftSlack)
		if !s.cfg.OutOfProcess {
			assert.Equal(t, int64(1), s.ex.Stats().Abandoned, "a cancelled stubborn call is abandoned")
		}
	}
}

func checkCancelledBeforeSubmit(t *testing.T, s *session) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	path := filepath.Join(s.dir, "ticks")
	call := s.call(t, Append, Args{Path: path, Tick: time.Millisecond, Sleep: time.Millisecond, Cooperative: true}, time.Minute)
	f, err := s.ex.Submit(ctx, call)
	if err != nil {
		// Refusing the call is allowed, with the context's error.
		require.ErrorIs(t, err, context.Canceled)
		return
	}
	_, err = f.Wait(context.Background())
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, executor.ErrTimeout)
}

func checkPanic(t *testing.T, s *session) {
	for _, limit := range []time.Duration{0, time.Minute} {
		r := s.run(t, context.Background(), s.call(t, Panic, Args{Text: "boom"}, limit))
		var pe *executor.PanicError
		require.ErrorAs(t, r.err, &pe, "limit %v", limit)
		assert.Equal(t, Panic.Name(), pe.Task)
		assert.Equal(t, "boom", fmt.Sprint(pe.Value))
		assert.Contains(t, string(pe.Stack), "panicky", "the stack is the panicking goroutine's")
		assert.Equal(t, executor.ClassPanic, executor.ClassOf(r.err))
	}
	// The executor survives its task's panic.
	assert.Equal(t, 6, reply(t, s.run(t, context.Background(), s.call(t, Echo, Args{N: 3}, time.Minute))).N)
}

func checkExit(t *testing.T, s *session) {
	r := s.run(t, context.Background(), s.call(t, Exit, Args{N: 3}, time.Minute))
	var ce *executor.CrashError
	require.ErrorAs(t, r.err, &ce)
	assert.ErrorIs(t, r.err, executor.ErrCrash)
	assert.Equal(t, Exit.Name(), ce.Task)
	assert.Contains(t, ce.Reason, "exit status 3")
	assert.Contains(t, ce.Stderr, "exiting with status 3", "the error quotes the child's stderr")
	assert.Equal(t, executor.ClassCrash, executor.ClassOf(r.err))
	// The worker is replaced: the next call works.
	assert.Equal(t, 8, reply(t, s.run(t, context.Background(), s.call(t, Echo, Args{N: 4}, time.Minute))).N)
}

func checkSignalDeath(t *testing.T, s *session) {
	r := s.run(t, context.Background(), s.call(t, Kill, Args{}, time.Minute))
	var ce *executor.CrashError
	require.ErrorAs(t, r.err, &ce)
	assert.Contains(t, ce.Reason, "killed")
	assert.Contains(t, ce.Stderr, "killing myself")
	assert.Equal(t, 10, reply(t, s.run(t, context.Background(), s.call(t, Echo, Args{N: 5}, time.Minute))).N)
}

// waitWarn returns the number of Warn lines for run in the executor's log,
// once there is one or a second (of the session's time) has passed: an
// executor may log an abandonment after it has answered the call, so that
// a slow logger never delays an answer.
func (s *session) waitWarn(t *testing.T, run string) int {
	for range 1000 {
		if n := warnLines(t, s.exLog, run); n > 0 {
			return n
		}
		s.settle(time.Millisecond)
	}
	return warnLines(t, s.exLog, run)
}

// warnLines counts the Warn lines of buf that carry the given run id.
func warnLines(t *testing.T, buf *LogBuffer, run string) int {
	n := 0
	for _, l := range buf.Lines(t) {
		if l["@level"] == "warn" && l["run"] == run {
			n++
		}
	}
	return n
}

func checkAbandoned(t *testing.T, s *session) {
	limit, work := 10*time.Millisecond, time.Second
	call := s.call(t, Sleep, Args{N: 1, Sleep: work}, limit) // ignores its context
	r := s.run(t, context.Background(), call)
	te := s.timeoutOf(t, r.err, call)
	assert.False(t, te.Stopped, "the work ignores its context: it cannot be known to have stopped")
	assert.LessOrEqual(t, r.elapsed, limit+s.cfg.SoftSlack, "the caller is answered at the limit, not when the work ends")
	st := s.ex.Stats()
	assert.Equal(t, int64(1), st.Abandoned)
	assert.Equal(t, int64(1), st.Running, "abandoned work still counts as running")
	assert.Equal(t, uint64(1), st.TimedOut)
	assert.Equal(t, 1, s.waitWarn(t, call.RunID), "the abandonment is logged once")

	s.settle(work)
	st = s.ex.Stats()
	assert.Equal(t, int64(0), st.Abandoned, "the abandoned work returned")
	assert.Equal(t, int64(0), st.Running)
	assert.Equal(t, 1, warnLines(t, s.exLog, call.RunID), "the abandonment is logged once")
}

func checkShutdownNamesStuck(t *testing.T, s *session) {
	work := 10 * time.Second
	call := s.call(t, Sleep, Args{Sleep: work}, 10*time.Millisecond)
	call.RunID = "stuck-run"
	r := s.run(t, context.Background(), call)
	s.timeoutOf(t, r.err, call)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.ex.Shutdown(ctx)
	var se *executor.ShutdownError
	require.ErrorAs(t, err, &se, "Shutdown must give up at its context and name what is stuck")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	require.Len(t, se.Running, 1)
	assert.Contains(t, se.Running[0], Sleep.Name())
	assert.Contains(t, se.Running[0], "stuck-run")

	_, err = s.ex.Submit(context.Background(), s.call(t, Echo, Args{}, 0))
	require.ErrorIs(t, err, executor.ErrClosed, "intake stopped at the first Shutdown")
	// The suite's own Shutdown, with a longer context, then waits it out.
}

func checkHardKill(t *testing.T, s *session) {
	// The task dies at SIGTERM but leaves a grandchild that traps it: the
	// executor must not stop at the worker's death.
	path := filepath.Join(s.dir, "grandchild")
	call := s.call(t, Grandchild, Args{Path: path, Sleep: time.Hour}, 300*time.Millisecond)
	r := s.run(t, context.Background(), call)
	te := s.timeoutOf(t, r.err, call)
	assert.True(t, te.Stopped)
	assert.Less(t, r.elapsed, call.Limit+s.cfg.Grace+hardSlack)
	data, err := os.ReadFile(path)
	require.NoError(t, err, "the task did not start its grandchild")
	var g GrandchildReport
	require.NoError(t, json.Unmarshal(data, &g))
	require.Positive(t, g.PGID)
	assert.NotEqual(t, ownGroup(), g.PGID, "the worker must have a process group of its own")
	assert.False(t, alive(-g.PGID), "a process of the call's group is still alive (or a zombie)")
	assert.False(t, alive(g.PID), "the grandchild is still alive (or a zombie)")
}

func checkGrandchild(t *testing.T, s *session) {
	// The grandchild traps SIGTERM and the task ignores its context: only
	// SIGKILL after the grace period ends them.
	path := filepath.Join(s.dir, "grandchild")
	limit := 200 * time.Millisecond
	call := s.call(t, Grandchild, Args{Path: path, Sleep: time.Hour, IgnoreTerm: true}, limit)
	r := s.run(t, context.Background(), call)
	te := s.timeoutOf(t, r.err, call)
	assert.True(t, te.Stopped)
	assert.GreaterOrEqual(t, r.elapsed, limit+s.cfg.Grace, "SIGKILL came before the grace period ended")
	assert.Less(t, r.elapsed, limit+s.cfg.Grace+hardSlack)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var g GrandchildReport
	require.NoError(t, json.Unmarshal(data, &g))
	assert.False(t, alive(g.PID), "the grandchild that traps SIGTERM survived")
	assert.False(t, alive(-g.PGID), "a process of the call's group survived")
}

func checkTermHonoured(t *testing.T, s *session) {
	// A process whose task returns on its context's end (or dies at
	// SIGTERM) must not wait out a long grace period.
	limit, grace := 200*time.Millisecond, 5*time.Second
	call := s.call(t, Sleep, Args{Sleep: time.Hour, Cooperative: true}, limit)
	call.Grace = grace
	r := s.run(t, context.Background(), call)
	te := s.timeoutOf(t, r.err, call)
	assert.True(t, te.Stopped)
	assert.Less(t, r.elapsed, limit+grace/2, "the executor waited out the grace period of a process that died on SIGTERM")
}

func checkSpawn(t *testing.T, s *session) {
	for _, limit := range []time.Duration{0, time.Minute} {
		rep := reply(t, s.run(t, context.Background(), s.call(t, Spawn, Args{N: 10, Text: "from a child"}, limit)))
		assert.Equal(t, 16, rep.N, "the task's goroutines ran")
		assert.Equal(t, "from a child", rep.Text, "the task's child process ran")
	}
}

func checkLogs(t *testing.T, s *session) {
	for i, limit := range []time.Duration{0, time.Minute} {
		call := s.call(t, Log, Args{Text: fmt.Sprintf("line %d", i)}, limit)
		call.RunID, call.Attempt = fmt.Sprintf("log-run-%d", i), 2
		reply(t, s.run(t, context.Background(), call))
		var found map[string]any
		for _, l := range s.taskLg.Lines(t) {
			if l["@message"] == "hello from task" && l["text"] == fmt.Sprintf("line %d", i) {
				found = l
			}
		}
		require.NotNil(t, found, "the task's log line did not reach the caller's logger:\n%s", s.taskLg.String())
		assert.Equal(t, Log.Name(), found["task"])
		assert.Equal(t, call.RunID, found["run"])
		assert.EqualValues(t, 2, found["attempt"])
		assert.Equal(t, "info", found["@level"])
	}
}

func checkBadRawInput(t *testing.T, s *session) {
	for _, limit := range []time.Duration{0, time.Minute} {
		call := s.call(t, Echo, Args{}, limit)
		call.Input = executor.Raw(`{"N": "not a number"}`)
		r := s.run(t, context.Background(), call)
		require.ErrorIs(t, r.err, executor.ErrBadInput)
		assert.NotErrorIs(t, r.err, executor.ErrTimeout)
		var ie *executor.InputError
		require.ErrorAs(t, r.err, &ie)
		assert.Equal(t, Echo.Name(), ie.Task)
		assert.Equal(t, "executortest.Args", ie.Type)
		assert.Contains(t, r.err.Error(), Echo.Name())
		assert.Contains(t, r.err.Error(), "executortest.Args")
		assert.Equal(t, executor.ClassBadInput, executor.ClassOf(r.err))
	}
	// A good raw input is decoded and runs.
	call := s.call(t, Echo, Args{}, 0)
	call.Input = executor.Raw(`{"N": 4}`)
	assert.Equal(t, 8, reply(t, s.run(t, context.Background(), call)).N)
}

func checkWrongInputType(t *testing.T, s *session) {
	call := s.call(t, Echo, Args{}, time.Minute)
	call.Input = "a string, not executortest.Args"
	r := s.run(t, context.Background(), call)
	var ie *executor.InputError
	require.ErrorAs(t, r.err, &ie)
	assert.Equal(t, Echo.Name(), ie.Task)
	assert.Equal(t, "executortest.Args", ie.Type)
	assert.Contains(t, ie.Err.Error(), "string")
	assert.NotErrorIs(t, r.err, executor.ErrTimeout)
}

func checkUnknownTask(t *testing.T, s *session) {
	r := s.run(t, context.Background(), s.call(t, Unregistered, Args{N: 1}, time.Minute))
	require.ErrorIs(t, r.err, executor.ErrUnknownTask)
	var ue *executor.UnknownTaskError
	require.ErrorAs(t, r.err, &ue)
	assert.Equal(t, Unregistered.Name(), ue.Task)
	assert.Contains(t, r.err.Error(), Unregistered.Name())
	assert.NotErrorIs(t, r.err, executor.ErrTimeout)
	assert.Equal(t, 2, reply(t, s.run(t, context.Background(), s.call(t, Echo, Args{N: 1}, time.Minute))).N)
}

func checkBadOutput(t *testing.T, s *session) {
	r := s.run(t, context.Background(), s.call(t, BadOutput, Args{}, time.Minute))
	require.ErrorIs(t, r.err, executor.ErrBadOutput)
	var oe *executor.OutputError
	require.ErrorAs(t, r.err, &oe)
	assert.Equal(t, BadOutput.Name(), oe.Task)
	assert.Contains(t, r.err.Error(), BadOutput.Name())
	assert.NotErrorIs(t, r.err, executor.ErrTimeout)
}

func checkSubmitAfterShutdown(t *testing.T, s *session) {
	require.NoError(t, s.ex.Shutdown(context.Background()))
	for _, limit := range []time.Duration{0, time.Minute} {
		f, err := s.ex.Submit(context.Background(), s.call(t, Echo, Args{}, limit))
		require.ErrorIs(t, err, executor.ErrClosed)
		assert.Nil(t, f)
	}
	require.NoError(t, s.ex.Shutdown(context.Background()), "a second Shutdown is fine")
}

func checkNilHandler(t *testing.T, s *session) {
	f, err := s.ex.Submit(context.Background(), executor.Call{Input: Args{}})
	require.Error(t, err)
	assert.Nil(t, f)
	assert.NotErrorIs(t, err, executor.ErrTimeout)
}

func checkStats(t *testing.T, s *session) {
	bg := context.Background()
	limit := 50 * time.Millisecond
	if s.hard {
		limit = 300 * time.Millisecond
	}
	reply(t, s.run(t, bg, s.call(t, Echo, Args{}, 0)))
	reply(t, s.run(t, bg, s.call(t, Echo, Args{}, time.Minute)))
	require.Error(t, s.run(t, bg, s.call(t, Fail, Args{}, time.Minute)).err)
	require.ErrorIs(t, s.run(t, bg, s.call(t, Sleep, Args{Sleep: time.Hour, Cooperative: true}, limit)).err, executor.ErrTimeout)
	ctx, cancel := context.WithCancel(bg)
	stop := time.AfterFunc(limit, cancel)
	require.ErrorIs(t, s.run(t, ctx, s.call(t, Sleep, Args{Sleep: time.Hour, Cooperative: true}, 0)).err, context.Canceled)
	stop.Stop()
	cancel()
	s.settle(limit)
	assert.Equal(t, executor.Stats{Submitted: 5, Succeeded: 2, Failed: 1, TimedOut: 1, Canceled: 1}, s.ex.Stats())
}

func checkManySubmitters(t *testing.T, s *session) {
	const submitters, each = 8, 25
	var g errgroup.Group // the first wrong answer is enough to fail
	for sub := range submitters {
		g.Go(func() error {
			for i := range each {
				n := sub*1000 + i
				limit := time.Duration(0)
				if i%2 == 1 {
					limit = time.Minute
				}
				f, err := s.ex.Submit(context.Background(), s.call(t, Echo, Args{N: n}, limit))
				if err != nil {
					return fmt.Errorf("call %d: submit: %w", n, err)
				}
				v, err := f.Wait(context.Background())
				if err != nil {
					return fmt.Errorf("call %d: %w", n, err)
				}
				if rep, ok := v.(Reply); !ok || rep.N != 2*n {
					return fmt.Errorf("call %d: got %#v, want N=%d", n, v, 2*n)
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	assert.Equal(t, uint64(submitters*each), s.ex.Stats().Succeeded)
}

// LogBuffer collects what loggers write, from any goroutine: tests hand
// its Logger to an executor or a call and read the lines back. The zero
// value is ready to use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; it never fails.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns an hclog logger at Trace level that writes JSON lines to b.
func (b *LogBuffer) Logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: b, JSONFormat: true, Level: hclog.Trace})
}

// Lines returns the JSON lines written so far, decoded; a line that is not
// JSON fails the test.
func (b *LogBuffer) Lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "log line %q", sc.Text())
		out = append(out, m)
	}
	return out
}

// checkLateRule pins the rule of executor.TimeoutHandler: the verdict is
// decided by when the executor sees the task return, against start +
// Limit. In a bubble it is exact: a return one nanosecond before the
// deadline is the task's result, a return at the deadline is a timeout.
// On the real clock, a task that saw its deadline pass before returning
// must not be answered with its result.
func checkLateRule(t *testing.T, s *session) {
	limit := 20 * time.Millisecond
	if s.hard {
		limit = 300 * time.Millisecond
	}
	if s.cfg.Synctest && !s.hard {
		r := s.run(t, context.Background(), s.call(t, Sleep, Args{N: 1, Text: "early", Sleep: limit - time.Nanosecond}, limit))
		assert.Equal(t, Reply{N: 1, Text: "early"}, reply(t, r), "a return before the deadline is on time")
		call := s.call(t, Sleep, Args{N: 2, Text: "at", Sleep: limit}, limit)
		r = s.run(t, context.Background(), call)
		s.timeoutOf(t, r.err, call)
		assert.Nil(t, r.value, "a return at the deadline is late")
		return
	}
	const n = 20
	var late, onTime atomic.Int64
	var g errgroup.Group
	for i := range n {
		g.Go(func() error {
			// Around the limit, on both sides.
			d := limit - limit/4 + time.Duration(i)*limit/(2*n)
			call := s.call(t, Sleep, Args{N: i, Text: strconv.Itoa(i), Sleep: d}, limit)
			f, err := s.ex.Submit(context.Background(), call)
			if err != nil {
				return fmt.Errorf("call %d: submit: %w", i, err)
			}
			v, err := f.Wait(context.Background())
			var te *executor.TimeoutError
			switch rep, ok := v.(Reply); {
			case err == nil && ok && rep.Text == strconv.Itoa(i):
				if rep.ReturnedLate {
					return fmt.Errorf("call %d: the task returned after its deadline, yet the call succeeded", i)
				}
				onTime.Add(1)
			case errors.As(err, &te):
				late.Add(1)
			default:
				return fmt.Errorf("call %d: got %#v, %v", i, v, err)
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	t.Logf("around the limit: %d on time, %d late", onTime.Load(), late.Load())
}

// checkGoexit: a task that calls runtime.Goexit is answered with a
// *executor.PanicError matching executor.ErrGoexit, and the executor goes
// on working; where a call without a limit runs on the caller's goroutine,
// Goexit ends that goroutine and the call is counted as failed.
func checkGoexit(t *testing.T, s *session) {
	for _, limit := range []time.Duration{0, time.Minute} {
		for range 3 { // again and again: nothing is lost each time
			before := s.ex.Stats()
			r, returned := s.runOff(s.call(t, Goexit, Args{}, limit))
			if !returned {
				require.True(t, limit <= 0 && s.cfg.RunsOnCaller,
					"Submit of a task calling runtime.Goexit (limit %v) ended the caller's goroutine", limit)
				after := s.ex.Stats()
				assert.Equal(t, before.Submitted+1, after.Submitted)
				assert.Equal(t, before.Failed+1, after.Failed, "the call is counted as failed")
				assert.Equal(t, before.Running, after.Running)
				continue
			}
			require.ErrorIs(t, r.err, executor.ErrGoexit, "limit %v", limit)
			var pe *executor.PanicError
			require.ErrorAs(t, r.err, &pe)
			assert.Equal(t, Goexit.Name(), pe.Task)
			assert.Equal(t, executor.ClassPanic, executor.ClassOf(r.err))
			assert.NotErrorIs(t, r.err, executor.ErrTimeout)
		}
	}
	assert.Equal(t, 6, reply(t, s.run(t, context.Background(), s.call(t, Echo, Args{N: 3}, time.Minute))).N)
	s.settle(time.Millisecond)
	st := s.ex.Stats()
	assert.Equal(t, int64(0), st.Running, "a Goexit leaves nothing running")
	assert.Equal(t, st.Submitted, st.Succeeded+st.Failed+st.TimedOut+st.Canceled, "Stats balance")
}

// runOff submits call and waits for it on a goroutine of its own, so that
// a task's runtime.Goexit on the caller's goroutine (or a broken executor)
// cannot end the test's: returned is false if that goroutine ended without
// an answer. A Submit error is r.err.
func (s *session) runOff(call executor.Call) (r result, returned bool) {
	var wg sync.WaitGroup
	wg.Go(func() {
		start := time.Now()
		f, err := s.ex.Submit(context.Background(), call)
		if err == nil {
			r.value, r.err = f.Wait(context.Background())
		} else {
			r.err = err
		}
		r.elapsed = time.Since(start)
		returned = true
	})
	wg.Wait()
	return r, returned
}

// ClassCase is one row of the cross-executor table: a hostile task and the
// error class every executor must give it.
type ClassCase struct {
	Name    string
	Handler *executor.Handler
	Input   any
	Class   executor.Class
	// Message, if set, is the error's message, which must be kept.
	Message string
	// OutOfProcessOnly marks a case that only exists across a boundary
	// (a result that cannot be encoded: in process nothing encodes it).
	OutOfProcessOnly bool
}

// ClassCases is the table that checkClasses runs on every executor, with
// and without a limit: the same hostile task gives the same class
// everywhere.
var ClassCases = []ClassCase{
	{Name: "panic", Handler: Panic, Input: Args{Text: "boom"}, Class: executor.ClassPanic},
	{Name: "goexit-with-a-limit", Handler: Goexit, Class: executor.ClassPanic},
	{Name: "own-deadline", Handler: OwnDeadline, Input: Args{Text: "GET /slow"}, Class: executor.ClassFailure,
		Message: "GET /slow: context deadline exceeded"},
	{Name: "failure", Handler: Fail, Input: Args{Text: "disk full"}, Class: executor.ClassFailure,
		Message: "disk full: " + ErrTask.Error()},
	{Name: "skip", Handler: Skip, Input: Args{Text: "nothing to do"}, Class: executor.ClassSkip, Message: "nothing to do"},
	{Name: "fatal", Handler: Fatal, Input: Args{Text: "give up"}, Class: executor.ClassFatal, Message: "give up"},
	{Name: "bad-raw-input", Handler: Echo, Input: executor.Raw(`{"N": "x"}`), Class: executor.ClassBadInput},
	{Name: "wrong-input-type", Handler: Echo, Input: 42, Class: executor.ClassBadInput},
	{Name: "unencodable-result", Handler: BadOutput, Class: executor.ClassBadOutput, OutOfProcessOnly: true},
}

func checkClasses(t *testing.T, s *session) {
	for _, c := range ClassCases {
		if c.OutOfProcessOnly && !s.cfg.OutOfProcess {
			continue
		}
		for _, limit := range []time.Duration{0, time.Minute} {
			if c.Handler == Goexit && s.cfg.SkipGoexit {
				continue
			}
			if c.Handler == Goexit && limit <= 0 && s.cfg.RunsOnCaller {
				continue // ends the caller's goroutine: see checkGoexit
			}
			call := s.call(t, c.Handler, Args{}, limit)
			call.Input = c.Input
			r, returned := s.runOff(call)
			if !returned {
				t.Errorf("%s, limit %v: Submit ended the caller's goroutine", c.Name, limit)
				continue
			}
			err := r.err
			if !assert.Error(t, err, "%s, limit %v", c.Name, limit) {
				continue
			}
			assert.Equal(t, c.Class, executor.ClassOf(err), "%s, limit %v: %v", c.Name, limit, err)
			if c.Message != "" {
				assert.Equal(t, c.Message, err.Error(), "%s, limit %v", c.Name, limit)
			}
			if c.Class != executor.ClassTimeout {
				assert.NotErrorIs(t, err, executor.ErrTimeout, "%s, limit %v", c.Name, limit)
			}
		}
	}
}

// checkCallersDeadline: a cooperative task that gives up because its
// caller's context passed its deadline (returning ctx.Err(), a bare
// context.DeadlineExceeded) was cancelled: the answer is of
// ClassCanceled, never a timeout and never the task's failure.
func checkCallersDeadline(t *testing.T, s *session) {
	for _, limit := range []time.Duration{0, time.Hour} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		r := s.run(t, ctx, s.call(t, Sleep, Args{Sleep: time.Hour, Cooperative: true}, limit))
		cancel()
		require.Error(t, r.err, "limit %v", limit)
		assert.Equal(t, executor.ClassCanceled, executor.ClassOf(r.err), "limit %v: %v", limit, r.err)
		assert.NotErrorIs(t, r.err, executor.ErrTimeout, "limit %v", limit)
	}
}

func checkBackpressure(t *testing.T, s *session) {
	if s.cfg.Capacity <= 0 {
		t.Skip("Config.Capacity is not set")
	}
	hold, release := context.WithCancel(context.Background())
	defer release()
	var held []*executor.Future
	for range s.cfg.Capacity {
		f, err := s.ex.Submit(hold, s.call(t, Sleep, Args{Sleep: time.Hour, Cooperative: true}, 0))
		require.NoError(t, err, "the executor refused a call within its capacity")
		held = append(held, f)
	}
	s.settle(10 * time.Millisecond) // the held calls reach their workers
	wait := 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	f, err := s.ex.Submit(ctx, s.call(t, Echo, Args{N: 1}, 0))
	elapsed := time.Since(start)
	assert.Nil(t, f, "a call beyond the capacity was accepted")
	assert.Equal(t, context.DeadlineExceeded, err, "Submit returns exactly ctx.Err() when its context ends while it waits for room")
	assert.NotErrorIs(t, err, executor.ErrQueueFull, "Submit waits for room; it never fails with ErrQueueFull")
	assert.GreaterOrEqual(t, elapsed, wait, "Submit did not wait for room")
	if ts, ok := s.ex.(executor.TrySubmitter); ok {
		start = time.Now()
		f, err = ts.TrySubmit(context.Background(), s.call(t, Echo, Args{N: 1}, 0))
		assert.Nil(t, f)
		assert.ErrorIs(t, err, executor.ErrQueueFull, "TrySubmit fails at once when there is no room")
		if s.cfg.Synctest && !s.hard {
			assert.Zero(t, time.Since(start), "TrySubmit does not wait")
		}
	}
	release()
	for _, f := range held {
		_, err := f.Wait(context.Background())
		assert.ErrorIs(t, err, context.Canceled)
	}
	// Room again: Submit goes through.
	assert.Equal(t, 4, reply(t, s.run(t, context.Background(), s.call(t, Echo, Args{N: 2}, 0))).N)
}
