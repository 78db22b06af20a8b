package executortest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
)

// StressConfig describes the executor that Stress runs against, and how
// hard to push it. Its zero fields get the defaults documented on each.
type StressConfig struct {
	// New returns a fresh executor whose own messages go to logger.
	// Stress makes two and shuts both down. Required.
	New func(t *testing.T, logger hclog.Logger) executor.Executor

	// OutOfProcess, Crashable and RunsOnCaller mean what they mean in
	// Config: results are encoded (an unencodable result is an
	// *executor.OutputError), tasks may os.Exit or SIGKILL their worker
	// (an *executor.CrashError), a call without a limit runs on the
	// submitting goroutine (so Stress never sends it a Goexit).
	OutOfProcess, Crashable, RunsOnCaller bool

	// SkipGoexit leaves out the task that calls runtime.Goexit. It is
	// transitional, as Config.SkipGoexit is, for executors whose workers
	// do not answer Goexit yet, and will be removed.
	SkipGoexit bool

	// Calls is the number of calls of the main phase. Zero means 4000.
	Calls int

	// Submitters is the number of goroutines submitting at once. Zero
	// means 64.
	Submitters int

	// Limit is the limit of the calls whose tasks end right at it (they
	// sleep from Limit-Limit/4 to Limit+Limit/4). Zero means 2ms; an
	// executor whose calls cross a process boundary may want more.
	Limit time.Duration

	// Grace is put in every call, for hard executors. Zero means the
	// executor's default.
	Grace time.Duration

	// MaxInput and MaxResult, when positive, are the executor's size
	// limits in encoded bytes: Stress sends inputs and asks for results
	// over them, which must be an *executor.InputError (from Submit or the
	// Future) and an *executor.OutputError.
	MaxInput, MaxResult int

	// AfterShutdown, if set, runs after each executor has shut down, for
	// checks Stress cannot make itself (no worker process left, say).
	AfterShutdown func(t *testing.T)
}

// Stress runs the executor under real concurrency on the real clock (run
// it with -race) and checks that the contract still holds:
//
//   - thousands of calls, from many goroutines at once, whose tasks end
//     right at their limits, some cancelled around the same moment, with
//     and without a RunID (many calls of one task with an empty RunID at
//     once among them), and hostile tasks: panics, runtime.Goexit, a
//     task's own deadline error, tasks that ignore their context, and out
//     of process unencodable results, os.Exit and SIGKILL of the worker,
//     inputs and results over the size limits;
//   - then Submit racing Shutdown.
//
// Every task echoes a token unique to its call. Stress fails the test if
// any Future is answered other than exactly once (OnDone callbacks are
// counted), with a value of another call, with a success the late rule
// forbids (the task saw its deadline pass before returning), or with an
// error of a type the contract does not give for that case; if Stats do
// not balance once the executor has shut down (Submitted equals the calls
// accepted and equals Succeeded + Failed + TimedOut + Canceled, each equal
// to the answers of its class; Running and Abandoned are zero); if
// Shutdown does not return within a minute; or if a goroutine started
// meanwhile is left (goleak). Do not run it in parallel with other tests.
// It logs one line with the number of calls and the time taken.
func Stress(t *testing.T, cfg StressConfig) {
	require.NotNil(t, cfg.New, "executortest: StressConfig.New is required")
	if cfg.Calls <= 0 {
		cfg.Calls = 4000
	}
	if cfg.Submitters <= 0 {
		cfg.Submitters = 64
	}
	if cfg.Limit <= 0 {
		cfg.Limit = 2 * time.Millisecond
	}
	require.False(t, cfg.Crashable && !cfg.OutOfProcess, "executortest: Crashable requires OutOfProcess")
	ignore := goleak.IgnoreCurrent()
	start := time.Now()

	t.Run("AtTheLimit", func(t *testing.T) {
		st := newStressRun(t, cfg)
		st.submitAll(t, cfg.Calls, st.mixed)
		st.shutdownAndCheck(t)
	})
	t.Run("ShutdownRacesSubmit", func(t *testing.T) {
		st := newStressRun(t, cfg)
		st.racingShutdown(t)
		st.checkAtRest(t)
	})
	if !t.Failed() {
		goleak.VerifyNone(t, ignore)
	}
	t.Logf("stress: %d calls in %v (%d submitters, limit %v)",
		totalCalls.Swap(0), time.Since(start).Round(time.Millisecond), cfg.Submitters, cfg.Limit)
}

// totalCalls counts the calls submitted by the running Stress, for its
// summary line.
var totalCalls atomic.Int64

// stressRun is one executor under stress and what was seen of it.
type stressRun struct {
	cfg StressConfig
	ex  executor.Executor

	accepted                       atomic.Uint64
	ok, failed, timedOut, canceled atomic.Uint64
	mu                             sync.Mutex
	problems                       []string
	futures                        []*stressFuture
	shutdownOnce                   sync.Once
	shutdownErr                    error
}

// stressFuture is an accepted call's Future and how often it was answered.
type stressFuture struct {
	f     *executor.Future
	what  string
	calls atomic.Int32
}

func newStressRun(t *testing.T, cfg StressConfig) *stressRun {
	st := &stressRun{cfg: cfg}
	st.ex = cfg.New(t, hclog.NewNullLogger())
	require.NotNil(t, st.ex)
	return st
}

func (st *stressRun) problem(format string, args ...any) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.problems) < 1000 {
		st.problems = append(st.problems, fmt.Sprintf(format, args...))
	}
}

// want says what answers a call may get.
type want struct {
	token    string // a Reply with this Text is the call's own value
	value    bool   // the call's own value is allowed
	timeout  bool   // a *executor.TimeoutError is allowed
	cancel   bool   // an error matching context.Canceled is allowed
	check    func(err error) bool
	checkMsg string // what check looks for
}

// submitAll submits n calls made by mk from cfg.Submitters goroutines and
// checks every answer.
func (st *stressRun) submitAll(t *testing.T, n int, mk func(i int) (executor.Call, want, time.Duration)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range st.cfg.Submitters {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				call, w, cancelAfter := mk(i)
				st.one(call, w, cancelAfter)
			}
		})
	}
	wg.Wait()
}

// one submits call, waits for it and checks its answer against w.
func (st *stressRun) one(call executor.Call, w want, cancelAfter time.Duration) {
	totalCalls.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if cancelAfter > 0 {
		stop := time.AfterFunc(cancelAfter, cancel)
		defer stop.Stop()
	}
	what := fmt.Sprintf("%s %q (limit %v)", call.Name(), w.token, call.Limit)
	if r, ok := st.ex.(executor.Runner); ok && w.check == nil && totalCalls.Load()%2 == 0 {
		// Every other call through the executor's own Run, which must
		// answer as Submit and Wait do.
		st.run(r, ctx, call, w, what)
		return
	}
	f, err := st.ex.Submit(ctx, call)
	if err != nil {
		switch {
		case w.check != nil && w.check(err):
			return // refused at Submit, as the contract allows for bad input
		case w.cancel && errors.Is(err, context.Canceled):
			return
		}
		st.problem("%s: Submit: %v", what, err)
		return
	}
	if f == nil {
		st.problem("%s: Submit returned neither a Future nor an error", what)
		return
	}
	st.accepted.Add(1)
	sf := &stressFuture{f: f, what: what}
	f.OnDone(func() { sf.calls.Add(1) })
	st.mu.Lock()
	st.futures = append(st.futures, sf)
	st.mu.Unlock()

	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	v, err := f.Wait(wctx)
	v2, err2, done := f.Result()
	if !done {
		st.problem("%s: not answered within a minute", what)
		return
	}
	if err2 != err || fmt.Sprint(v2) != fmt.Sprint(v) {
		st.problem("%s: the answer changed: %v, %v then %v, %v", what, v, err, v2, err2)
	}
	st.answered(call, w, what, v, err)
}

// run runs call through r.Run and checks its answer against w, as one
// does for Submit and Wait.
func (st *stressRun) run(r executor.Runner, ctx context.Context, call executor.Call, w want, what string) {
	var v any
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		v, err = r.Run(ctx, call)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		st.problem("%s: Run did not return within a minute", what)
		<-done
		return
	}
	if err != nil && err == ctx.Err() {
		if !w.cancel {
			st.problem("%s: Run refused the call: %v", what, err)
		}
		return // refused as Submit may refuse: not accepted
	}
	st.accepted.Add(1)
	st.answered(call, w, what, v, err)
}

// answered counts and checks the answer v, err of call against w.
func (st *stressRun) answered(call executor.Call, w want, what string, v any, err error) {
	switch executor.ClassOf(err) {
	case "":
		st.ok.Add(1)
	case executor.ClassTimeout:
		st.timedOut.Add(1)
	case executor.ClassCanceled:
		st.canceled.Add(1)
	default:
		st.failed.Add(1)
	}
	var te *executor.TimeoutError
	switch {
	case err == nil:
		rep, ok := v.(Reply)
		switch {
		case !w.value:
			st.problem("%s: succeeded with %#v; want an error", what, v)
		case !ok:
			st.problem("%s: a %T, not a Reply", what, v)
		case rep.Text != w.token:
			st.problem("%s: got another call's value (token %q)", what, rep.Text)
		case rep.ReturnedLate:
			st.problem("%s: the task returned after its deadline, yet the call succeeded", what)
		}
	case w.timeout && errors.As(err, &te):
		if te.Task != call.Name() || te.Limit != call.Limit {
			st.problem("%s: a TimeoutError of another call: %v", what, err)
		}
	case w.cancel && errors.Is(err, context.Canceled) && !errors.Is(err, executor.ErrTimeout):
	case w.check != nil && w.check(err):
	default:
		st.problem("%s: unexpected answer %#v, %v (%T); want value=%v timeout=%v cancel=%v %s",
			what, v, err, err, w.value, w.timeout, w.cancel, w.checkMsg)
	}
}

// mixed makes call i of the main phase.
func (st *stressRun) mixed(i int) (executor.Call, want, time.Duration) {
	limit := st.cfg.Limit
	token := "t" + strconv.Itoa(i)
	call := executor.Call{Attempt: 1, Grace: st.cfg.Grace}
	if i%2 == 0 {
		call.RunID = "stress-" + token // half the calls have no RunID
	}
	around := func() time.Duration { // right at the limit, on both sides
		return limit - limit/4 + rand.N(limit/2+1)
	}
	w := want{token: token}
	var cancelAfter time.Duration
	switch i % 8 {
	case 0, 1, 2:
		call.Handler, call.Limit = Sleep, limit
		call.Input = Args{Text: token, Sleep: around(), Cooperative: i%3 == 0}
		w.value, w.timeout = true, true
	case 3: // cancellation racing the timeout racing the return
		call.Handler, call.Limit = Sleep, limit
		call.Input = Args{Text: token, Sleep: around(), Cooperative: i%16 == 3}
		cancelAfter = around()
		w.value, w.timeout, w.cancel = true, true, true
	case 4, 5: // many calls of one task with one identity, at once
		call.Handler, call.RunID = Echo, ""
		call.Input = Args{Text: token}
		if i%8 == 5 {
			call.Limit = time.Minute
		}
		w.value = true
		return call, want{token: token, value: true}, 0
	case 6:
		return st.hostile(i, call, token)
	case 7: // no limit; a cancellation may come
		call.Handler = Sleep
		call.Input = Args{Text: token, Sleep: around(), Cooperative: true}
		if i%16 == 7 {
			cancelAfter = around()
			w.cancel = true
		}
		w.value = true
	}
	return call, w, cancelAfter
}

func isPanic(err error) bool {
	var pe *executor.PanicError
	return errors.As(err, &pe) && executor.ClassOf(err) == executor.ClassPanic
}

// hostile makes a call of a hostile task.
func (st *stressRun) hostile(i int, call executor.Call, token string) (executor.Call, want, time.Duration) {
	limit := st.cfg.Limit
	kinds := []string{"panic", "goexit", "own-deadline", "ignores-context"}
	if st.cfg.SkipGoexit {
		kinds = []string{"panic", "own-deadline", "ignores-context"}
	}
	if st.cfg.OutOfProcess {
		kinds = append(kinds, "bad-output")
	}
	if st.cfg.Crashable {
		kinds = append(kinds, "exit", "kill")
	}
	if st.cfg.MaxInput > 0 {
		kinds = append(kinds, "big-input")
	}
	if st.cfg.MaxResult > 0 {
		kinds = append(kinds, "big-result")
	}
	k := kinds[(i/8)%len(kinds)]
	if (i/8)%3 == 0 {
		call.Limit = time.Minute
	}
	call.Input = Args{Text: token}
	w := want{token: token}
	switch k {
	case "panic":
		call.Handler = Panic
		w.check, w.checkMsg = isPanic, "a *PanicError"
	case "goexit":
		call.Handler = Goexit
		if st.cfg.RunsOnCaller {
			call.Limit = time.Minute // without a limit it would end this goroutine
		}
		w.check = func(err error) bool { return isPanic(err) && errors.Is(err, executor.ErrGoexit) }
		w.checkMsg = "a *PanicError matching ErrGoexit"
	case "own-deadline":
		call.Handler = OwnDeadline
		msg := token + ": " + context.DeadlineExceeded.Error()
		w.check = func(err error) bool {
			return executor.ClassOf(err) == executor.ClassFailure && err.Error() == msg
		}
		w.checkMsg = "a failure " + strconv.Quote(msg)
	case "ignores-context":
		call.Handler, call.Limit = Sleep, limit
		call.Input = Args{Text: token, Sleep: 3 * limit}
		w.timeout = true
	case "bad-output":
		call.Handler = BadOutput
		w.check, w.checkMsg = isOfType[*executor.OutputError], "an *OutputError"
	case "exit":
		call.Handler, call.Input = Exit, Args{N: 3, Text: token}
		w.check, w.checkMsg = isOfType[*executor.CrashError], "a *CrashError"
	case "kill":
		call.Handler = Kill
		w.check, w.checkMsg = isOfType[*executor.CrashError], "a *CrashError"
	case "big-input":
		call.Handler = Echo
		call.Input = Args{Text: strings.Repeat("i", st.cfg.MaxInput+1)}
		w.check, w.checkMsg = isOfType[*executor.InputError], "an *InputError"
	case "big-result":
		call.Handler, call.Input = Big, Args{N: st.cfg.MaxResult + 1}
		w.check, w.checkMsg = isOfType[*executor.OutputError], "an *OutputError"
	}
	return call, w, 0
}

func isOfType[E error](err error) bool {
	var e E
	return errors.As(err, &e)
}

// racingShutdown submits calls from every submitter until Submit refuses,
// and shuts the executor down while they do.
func (st *stressRun) racingShutdown(t *testing.T) {
	limit := st.cfg.Limit
	var n atomic.Int64
	var wg sync.WaitGroup
	started := make(chan struct{})
	var once sync.Once
	for range st.cfg.Submitters {
		wg.Go(func() {
			for k := 0; ; k++ {
				i := int(n.Add(1))
				token := "s" + strconv.Itoa(i)
				call := executor.Call{Handler: Sleep, Attempt: 1, Grace: st.cfg.Grace,
					Input: Args{Text: token, Sleep: limit - limit/4 + rand.N(limit/2+1)}}
				if i%2 == 0 {
					call.Limit, call.RunID = limit, "race-"+token
				}
				if k == 4 {
					once.Do(func() { close(started) })
				}
				f, err := st.ex.Submit(context.Background(), call)
				totalCalls.Add(1)
				if err != nil {
					if !errors.Is(err, executor.ErrClosed) {
						st.problem("%s: Submit during Shutdown: %v", token, err)
					}
					return
				}
				st.accepted.Add(1)
				sf := &stressFuture{f: f, what: token}
				f.OnDone(func() { sf.calls.Add(1) })
				st.mu.Lock()
				st.futures = append(st.futures, sf)
				st.mu.Unlock()
				st.tally(token, call, f)
			}
		})
	}
	<-started
	st.shutdown(t)
	wg.Wait()
}

// tally waits for a call of the race phase and counts its answer: its own
// value, a timeout, or a cancellation (a call still queued at Shutdown).
func (st *stressRun) tally(token string, call executor.Call, f *executor.Future) {
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := f.Wait(wctx)
	if _, _, ok := f.Result(); !ok {
		st.problem("%s: not answered within a minute", token)
		return
	}
	var te *executor.TimeoutError
	switch {
	case err == nil:
		st.ok.Add(1)
		if rep, ok := v.(Reply); !ok || rep.Text != token || rep.ReturnedLate {
			st.problem("%s: got %#v", token, v)
		}
	case errors.As(err, &te) && call.Limit > 0:
		st.timedOut.Add(1)
	case errors.Is(err, context.Canceled) && executor.ClassOf(err) == executor.ClassCanceled:
		st.canceled.Add(1)
	default:
		st.failed.Add(1)
		st.problem("%s: unexpected answer %#v, %v", token, v, err)
	}
}

func (st *stressRun) shutdown(t *testing.T) {
	st.shutdownOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st.shutdownErr = st.ex.Shutdown(ctx)
	})
}

func (st *stressRun) shutdownAndCheck(t *testing.T) {
	st.shutdown(t)
	st.checkAtRest(t)
}

// checkAtRest checks, once the executor has shut down, that every Future
// was answered exactly once and that Stats balance with the answers seen.
func (st *stressRun) checkAtRest(t *testing.T) {
	assert.NoError(t, st.shutdownErr, "Shutdown")
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, p := range st.problems {
		t.Error(p)
	}
	once := 0
	for _, sf := range st.futures {
		switch n := sf.calls.Load(); n {
		case 1:
			once++
		default:
			t.Errorf("%s: its OnDone callback ran %d times", sf.what, n)
		}
	}
	assert.Equal(t, len(st.futures), once, "futures answered exactly once")
	got := st.ex.Stats()
	assert.Equal(t, executor.Stats{
		Submitted: st.accepted.Load(),
		Succeeded: st.ok.Load(),
		Failed:    st.failed.Load(),
		TimedOut:  st.timedOut.Load(),
		Canceled:  st.canceled.Load(),
	}, got, "Stats at rest: Submitted = the calls accepted, each outcome = the answers of its class")
	assert.Equal(t, got.Submitted, got.Succeeded+got.Failed+got.TimedOut+got.Canceled, "Stats balance")
	if st.cfg.AfterShutdown != nil {
		st.cfg.AfterShutdown(t)
	}
}
