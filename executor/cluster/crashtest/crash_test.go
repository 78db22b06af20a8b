//go:build linux && !race

package crashtest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/internal/envelope"
	"github.com/flowline-go/flowline/executor/cluster/internal/freeport"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/task"
)

// roleEnv turns the test binary into a server or a worker process; the
// role's configuration is JSON in configEnv.
const (
	roleEnv   = "FLOWLINE_CRASH_ROLE"
	configEnv = "FLOWLINE_CRASH_CONFIG"
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "server":
		os.Exit(serverMain())
	case "worker":
		os.Exit(workerMain())
	}
	goleak.VerifyTestMain(m)
}

// recoveryBound is the figure: after one server's death, calls
// complete again within it. ownSlack is what the cluster executor may add
// to JetStream's own election of a consumer or bucket leader: a free slot
// pulls again within 250ms, a result write is repeated within 250ms, the
// watchdog reads results within a second of a stalled watcher.
const (
	recoveryBound = 5 * time.Second
	ownSlack      = 1500 * time.Millisecond
)

// taskLimit is the limit of every call: the "2 s task limit".
const taskLimit = 2 * time.Second

// square is the mapped task: it works 20ms, notes that it ran (one line
// "n pid" in its worker's log, written when it returns), and returns n².
var square = task.New("crash.square", func(ctx context.Context, n int) (int, error) {
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if path := os.Getenv("FLOWLINE_CRASH_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return 0, err
		}
		_, err = fmt.Fprintf(f, "%d %d\n", n, os.Getpid())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, err
		}
	}
	return n * n, nil
}, task.Options{Timeout: taskLimit})

// serverConfig is one server process of the cluster.
type serverConfig struct {
	Name       string
	ClientPort int
	RoutePort  int
	Routes     []string
	StoreDir   string
}

func (c serverConfig) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", c.ClientPort) }

// serverMain is a NATS server process: an embedded server with a fixed
// store, so that a restarted one finds its data, until SIGTERM.
func serverMain() int {
	var cfg serverConfig
	if err := json.Unmarshal([]byte(os.Getenv(configEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "server config:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := natsserver.Start(natsserver.Options{
		Name:     cfg.Name,
		Listen:   fmt.Sprintf("127.0.0.1:%d", cfg.ClientPort),
		StoreDir: cfg.StoreDir,
		Cluster: &natsserver.Cluster{Name: "flowline-crash", Listen: fmt.Sprintf("127.0.0.1:%d", cfg.RoutePort),
			Routes: cfg.Routes},
		Logger:       hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn}),
		StartTimeout: time.Minute,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return 1
	}
	<-ctx.Done()
	srv.Shutdown()
	return 0
}

// workerConfig is one worker process.
type workerConfig struct {
	Name  string
	URL   string
	Setup cluster.Setup
	Level string // the worker's log level; FLOWLINE_CRASH_WORKER_LEVEL, default warn
}

// workerSlots is every worker's concurrency.
const workerSlots = 8

// leftToHolderMsg is the worker's Debug message for a call delivered again
// while another live worker holds it (executor/cluster, leaveToHolder).
const leftToHolderMsg = "a call delivered again is held by another worker; leaving it to it"

func workerMain() int {
	var cfg workerConfig
	if err := json.Unmarshal([]byte(os.Getenv(configEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "worker config:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := &hclog.LoggerOptions{Output: os.Stderr, Level: hclog.LevelFromString(cfg.Level), Name: cfg.Name}
	if opts.Level == hclog.NoLevel {
		// Warnings, and the one Debug line the suite counts: a call
		// delivered again and left to the live worker holding it.
		opts.Level = hclog.Debug
		opts.Exclude = func(level hclog.Level, msg string, _ ...any) bool {
			return level < hclog.Warn && msg != leftToHolderMsg
		}
	}
	logger := hclog.New(opts)
	reg, err := task.NewRegistry(square)
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		return 2
	}
	runner := local.New(local.Options{})
	err = cluster.Serve(ctx, cluster.WorkerOptions{
		Connection: cluster.Connection{URL: cfg.URL, StartTimeout: time.Minute}, Setup: cfg.Setup,
		Registry: reg, Executor: runner, Concurrency: workerSlots, Name: cfg.Name, Logger: logger,
		DrainTimeout: 10 * time.Second,
	})
	_ = runner.Shutdown(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

// proc is a child process of the test.
type proc struct {
	name   string
	env    []string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startProc(t *testing.T, name string, env ...string) *proc {
	t.Helper()
	p := &proc{name: name, env: env, stderr: &lockedBuffer{}}
	p.start(t)
	return p
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(append(os.Environ(), "GORACE="+gorace), p.env...)
	cmd.Stderr = p.stderr
	cmd.SysProcAttr = procAttr()
	require.NoError(t, cmd.Start(), p.name)
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
}

// kill sends SIGKILL and waits until the process is dead and reaped.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM, waits, and kills after a while.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// natsCluster is three server processes.
type natsCluster struct {
	cfgs    []serverConfig
	servers []*proc
}

func startCluster(t *testing.T) *natsCluster {
	t.Helper()
	ports := freeport.Loopback(t, 6)
	c := &natsCluster{}
	for i := range 3 {
		cfg := serverConfig{Name: fmt.Sprintf("s%d", i), ClientPort: ports[i], RoutePort: ports[3+i],
			StoreDir: filepath.Join(t.TempDir(), fmt.Sprintf("s%d", i))}
		for j := range 3 {
			if j != i {
				cfg.Routes = append(cfg.Routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3+j]))
			}
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	for _, cfg := range c.cfgs {
		b, err := json.Marshal(cfg)
		require.NoError(t, err)
		c.servers = append(c.servers, startProc(t, cfg.Name, roleEnv+"=server", configEnv+"="+string(b)))
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			if s.alive() {
				s.stop()
			}
			if t.Failed() {
				t.Logf("server %s stderr:\n%s", s.name, s.stderr.String())
			}
		}
	})
	return c
}

func (c *natsCluster) urls() string {
	var us []string
	for _, cfg := range c.cfgs {
		us = append(us, cfg.url())
	}
	return strings.Join(us, ",")
}

func (c *natsCluster) index(name string) int {
	for i, cfg := range c.cfgs {
		if cfg.Name == name {
			return i
		}
	}
	return -1
}

// restart starts a killed server again, with its store, and waits until
// it answers JetStream requests.
func (c *natsCluster) restart(t *testing.T, i int) error {
	c.servers[i].start(t)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(c.cfgs[i].url(), nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("server %s not ready a minute after its restart", c.cfgs[i].Name)
}

// observer is the test's own connection, for leaders and checks.
type observer struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func observe(t *testing.T, c *natsCluster) *observer {
	t.Helper()
	nc, err := nats.Connect(c.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return &observer{nc: nc, js: js}
}

// streamLeader names the leader of a stream.
func (o *observer) streamLeader(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := o.js.Stream(ctx, name)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", errors.New("no leader")
	}
	return info.Cluster.Leader, nil
}

// watcherServer names the server holding the submitter's watcher: the
// ephemeral (ordered) consumer on the bucket's stream.
func (o *observer) watcherServer(bucket string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return o.watcherServerCtx(ctx, bucket)
}

func (o *observer) watcherServerCtx(ctx context.Context, bucket string) (string, error) {
	s, err := o.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return "", err
	}
	lister := s.ListConsumers(ctx)
	leader := ""
	for info := range lister.Info() { // to its end: the lister's goroutine ends then
		if info.Config.Durable == "" && info.Cluster != nil && info.Cluster.Leader != "" {
			leader = info.Cluster.Leader
		}
	}
	if leader != "" {
		return leader, nil
	}
	if err := lister.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no watcher consumer found")
}

// run is one scenario's deployment: its own stream, consumer and bucket,
// two worker processes and a submitter.
type run struct {
	name    string
	setup   cluster.Setup
	logDir  string
	workers []*proc
	ex      *cluster.Executor

	mu         sync.Mutex
	recoveries []*recovery // of each server killed, in order
}

func (c *natsCluster) deploy(t *testing.T, name string) *run {
	t.Helper()
	r := &run{name: name, logDir: t.TempDir(), setup: cluster.Setup{
		Prefix: "crash-" + name, Stream: "CRASH_" + name, Consumer: "workers-" + name, Bucket: "results-" + name,
		Replicas: 3,
		// The audit reads every call's record after the run, with its
		// write time: taken records stay ResultTTL, as untaken ones.
		TakenTTL: 10 * time.Minute,
	}}
	ex, err := cluster.New(cluster.Options{Connection: cluster.Connection{URL: c.urls(), StartTimeout: time.Minute},
		Setup: r.setup, Logger: hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Warn, Name: "submitter"})})
	require.NoError(t, err)
	r.ex = ex
	for i := range 2 {
		wname := fmt.Sprintf("w%d", i)
		b, err := json.Marshal(workerConfig{Name: wname, URL: c.urls(), Setup: r.setup, Level: os.Getenv("FLOWLINE_CRASH_WORKER_LEVEL")})
		require.NoError(t, err)
		r.workers = append(r.workers, startProc(t, wname, roleEnv+"=worker", configEnv+"="+string(b),
			"FLOWLINE_CRASH_LOG="+filepath.Join(r.logDir, wname+".log")))
	}
	t.Cleanup(func() {
		for _, w := range r.workers {
			if w.alive() {
				w.stop()
			}
			if t.Failed() {
				t.Logf("worker %s stderr:\n%s", w.name, w.stderr.String())
			}
			if dir := os.Getenv("FLOWLINE_CRASH_KEEP_LOGS"); dir != "" {
				_ = os.WriteFile(filepath.Join(dir, r.name+"-"+w.name+".log"), []byte(w.stderr.String()), 0o644)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, r.ex.Shutdown(ctx))
	})
	return r
}

// testWriter sends the submitter's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// executions reads the worker logs: how many times each input ran to its
// end, and on which workers.
func (r *run) executions(t *testing.T) map[int][]string {
	t.Helper()
	runs := make(map[int][]string)
	for _, w := range r.workers {
		f, err := os.Open(filepath.Join(r.logDir, w.name+".log"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			n, err := strconv.Atoi(strings.Fields(sc.Text())[0])
			require.NoError(t, err)
			runs[n] = append(runs[n], w.name)
		}
		require.NoError(t, f.Close())
	}
	return runs
}

// progress is how many calls have run to their end.
func (r *run) progress() int {
	n := 0
	for _, w := range r.workers {
		if fi, err := os.Stat(filepath.Join(r.logDir, w.name+".log")); err == nil {
			n += int(fi.Size()) / 14 // lines are at most "nnnnn ppppppp\n" (inputs under 100,000): a lower bound is enough
		}
	}
	return n
}

// scenario is what to do to the deployment while it runs; it returns when
// it killed (the moments the recovery gaps are measured from) and the
// workers it killed.
type scenario struct {
	name    string
	inputs  int
	single  bool                                                          // each kill is one server's death: its recovery is asserted
	prepare func(t *testing.T, c *natsCluster, o *observer, r *run) error // before the run; may be nil
	act     func(t *testing.T, c *natsCluster, o *observer, r *run) (kills []time.Time, killed []string, err error)
}

func TestCrashes(t *testing.T) {
	c := startCluster(t)
	o := observe(t, c)
	for _, sc := range []scenario{
		{name: "stream-leader", inputs: 2000, single: true, act: killStreamLeader},
		{name: "watcher-server", inputs: 2000, single: true, act: killWatcherServer},
		{name: "worker-and-follower", inputs: 2000, single: true, prepare: prepareFollower, act: killWorkerAndFollower},
		{name: "two-of-three", inputs: 2000, act: killTwoOfThree},
		{name: "each-in-turn", inputs: 30000, single: true, act: killEachInTurn},
	} {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, c, o, sc) })
		if t.Failed() {
			return
		}
	}
}

func runScenario(t *testing.T, c *natsCluster, o *observer, sc scenario) {
	for i, s := range c.servers {
		require.True(t, s.alive(), "server %d is down before the scenario", i)
	}
	r := c.deploy(t, strings.ReplaceAll(sc.name, "-", "_"))
	require.NoError(t, o.waitHealthy(r))
	if sc.prepare != nil {
		require.NoError(t, sc.prepare(t, c, o, r))
	}

	inputs := make([]int, sc.inputs)
	for i := range inputs {
		inputs[i] = i
	}
	b := flow.New("crash-"+sc.name, flow.Options{Timeout: 4 * time.Minute})
	out := flow.Map(b, square, flow.Const(inputs))
	f, err := b.Build()
	require.NoError(t, err)

	type acted struct {
		kills  []time.Time
		killed []string
		err    error
	}
	actDone := make(chan acted, 1)
	go func() {
		// Once a tenth of the calls have run: the run is in full swing.
		for r.progress() < sc.inputs/10 {
			time.Sleep(10 * time.Millisecond)
		}
		kills, killed, err := sc.act(t, c, o, r)
		actDone <- acted{kills, killed, err}
	}()
	start := time.Now()
	res, err := f.Run(context.Background(), r.ex, flow.RunOptions{})
	took := time.Since(start)
	a := <-actDone
	require.NoError(t, a.err)
	require.NoError(t, err)

	// Every call answered once, with its own value: no timeout, no loss.
	var failed []string
	var ends []time.Time
	for _, tr := range res.Tasks {
		if tr.Index < 0 {
			continue
		}
		if tr.State != task.Success || tr.Value != tr.Index*tr.Index {
			failed = append(failed, fmt.Sprintf("%s: %v %v %v", tr.Task, tr.State, tr.Value, tr.Err))
		}
		ends = append(ends, tr.End)
	}
	assert.Empty(t, failed, "%d of %d calls not answered with their value", len(failed), sc.inputs)
	vs, ok := flow.Value(res, out)
	assert.True(t, ok, res.State)
	assert.Len(t, vs, sc.inputs)

	// The recorded results are the answers: one Output record per call,
	// with its value, and no verdict of a submitter among them.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kv, err := o.js.KeyValue(ctx, r.setup.Bucket)
	require.NoError(t, err)
	deliveries, wrong := 0, 0
	var recorded []time.Time // when each result was written, by the server's clock
	for _, tr := range res.Tasks {
		if tr.Index < 0 || len(tr.Attempts) == 0 {
			continue
		}
		// The call's id, as executor.Call.ID makes it: run/task/attempt.
		key := envelope.Key(fmt.Sprintf("%s/%s/%d", tr.RunID, square.Name(), len(tr.Attempts)))
		entry, err := kv.Get(ctx, key)
		if err != nil {
			wrong++
			t.Errorf("%s: no record under %s: %v", tr.Task, key, err)
			continue
		}
		recorded = append(recorded, entry.Created())
		rec, err := envelope.DecodeResult(entry.Value())
		require.NoError(t, err)
		var v int
		if rec.Kind != envelope.Output || json.Unmarshal(rec.Payload, &v) != nil || v != tr.Index*tr.Index || tr.Value != v {
			wrong++
			t.Errorf("%s: recorded %c %s, answered %v", tr.Task, rec.Kind, rec.Payload, tr.Value)
		}
		if rec.Delivery > 1 {
			deliveries++
		}
		if tr.Attempts[len(tr.Attempts)-1].Deliveries != int(rec.Delivery) {
			t.Errorf("%s: answered with %d deliveries, recorded %d", tr.Task, tr.Attempts[len(tr.Attempts)-1].Deliveries, rec.Delivery)
		}
	}
	assert.Zero(t, wrong, "calls whose answer is not their record")

	// None executed twice, except a call whose first run was on a worker
	// that was killed (at least once: it may have run to its end and died
	// before recording it).
	twice := 0
	perWorker := make(map[string]int)
	for n, where := range r.executions(t) {
		if len(where) > 1 && !slices.ContainsFunc(where, func(w string) bool { return slices.Contains(a.killed, w) }) {
			t.Errorf("input %d ran to its end %d times, on %v", n, len(where), where)
		}
		if len(where) > 1 {
			twice++
		}
		for _, w := range where {
			perWorker[w]++
		}
	}
	t.Logf("runs to their end per worker: %v", perWorker)

	// Nothing left: the stream is empty once the last acks land. An ack
	// lost with a dead stream leader leaves its message in the stream
	// until the ack wait (30s by default) redelivers it; the worker then
	// finds its result recorded and acks it without running it again. So
	// the wait covers one ack wait, and says what is left if it runs out.
	emptyFrom := time.Now()
	var left atomic.Pointer[string] // written by Eventually's goroutine
	say := func(format string, args ...any) { m := fmt.Sprintf(format, args...); left.Store(&m) }
	empty := assert.Eventually(t, func() bool {
		// Each look has a short limit of its own: a request sent just as
		// the observer's server died is never answered, and one look that
		// hangs would stop Eventually from looking again.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := o.js.Stream(ctx, r.setup.Stream)
		if err != nil {
			say("stream: %v", err)
			return false
		}
		info, err := s.Info(ctx)
		if err != nil {
			say("stream info: %v", err)
			return false
		}
		say("%d messages", info.State.Msgs)
		if c, err := s.Consumer(ctx, r.setup.Consumer); err == nil {
			if ci, err := c.Info(ctx); err == nil {
				say("%d messages; consumer: %d ack pending, %d redelivered, %d waiting pulls",
					info.State.Msgs, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting)
			}
		}
		return info.State.Msgs == 0
	}, 45*time.Second, 100*time.Millisecond, "calls left in the stream")
	if !empty {
		if m := left.Load(); m != nil {
			t.Fatalf("left in the stream: %s", *m)
		}
		t.FailNow()
	}
	t.Logf("the stream was empty %v after the run", time.Since(emptyFrom).Round(10*time.Millisecond))

	// The recovery gap after each kill: the longest time without a
	// completion, over the completions and, apart, over the records'
	// write times (the server's clock), which tells a stall of the work
	// from one of the submitter's results.
	slices.SortFunc(ends, func(x, y time.Time) int { return x.Compare(y) })
	slices.SortFunc(recorded, func(x, y time.Time) int { return x.Compare(y) })
	var gaps []string
	r.mu.Lock()
	recoveries := r.recoveries
	r.mu.Unlock()
	for k, at := range a.kills {
		require.True(t, at.Before(res.End), "kill %d came after the run's end: the scenario needs more inputs", k+1)
		until := res.End
		if k+1 < len(a.kills) {
			until = a.kills[k+1]
		}
		g := measureGap(ends, at, until)
		// A kill that leaves few calls measures nothing: they may all have
		// been running already, and complete without the cluster.
		require.GreaterOrEqual(t, g.n, minAfter, "kill %d left only %d calls to complete: the scenario needs more inputs", k+1, g.n)
		rg := measureGap(recorded, at, until)
		gaps = append(gaps, fmt.Sprintf("stall %v (records %v), last call %v after",
			g.stall.Round(10*time.Millisecond), rg.stall.Round(10*time.Millisecond), g.tail.Round(10*time.Millisecond)))
		if sc.single {
			// The recovery after one server's death is under 5s, unless the
			// dead server led the consumer or the bucket: then nothing can
			// complete before JetStream elects their new leaders (its
			// election timeout is 4-9s), and the recovery is under that
			// election plus ownSlack.
			elected, led := recoveries[k].elected()
			bound := recoveryBound
			if led {
				bound = max(bound, elected+ownSlack)
			}
			assert.Less(t, g.stall, bound, "kill %d: recovery %v (%s)", k+1, g.stall, recoveries[k])
			if led {
				t.Logf("kill %d: recovery %v, %v after JetStream's election of what the dead server led (%v)",
					k+1, g.stall.Round(10*time.Millisecond), (g.stall - elected).Round(10*time.Millisecond), elected.Round(10*time.Millisecond))
			} else {
				t.Logf("kill %d: recovery %v (the dead server led neither the consumer nor the bucket)", k+1, g.stall.Round(10*time.Millisecond))
			}
		}
		if k == 0 {
			t.Logf("completions per 250ms after the kill: %s", histogram(ends, at))
			t.Logf("records per 250ms after the kill:     %s", histogram(recorded, at))
		}
	}
	r.mu.Lock()
	for k, rc := range r.recoveries {
		t.Logf("kill %d: %s", k+1, rc)
	}
	r.mu.Unlock()
	heldElsewhere := 0
	for _, w := range r.workers {
		heldElsewhere += strings.Count(w.stderr.String(), leftToHolderMsg)
	}
	t.Logf("%s: %d calls in %v, %d recorded by a redelivery, %d run to their end twice (killed workers %v), %d deliveries left to a live holder; after each kill: %s",
		sc.name, sc.inputs, took.Round(10*time.Millisecond), deliveries, twice, a.killed, heldElsewhere, strings.Join(gaps, ", "))

	// Workers stop cleanly: nothing is left running.
	for _, w := range r.workers {
		if w.alive() {
			w.stop()
			assert.Equal(t, 0, w.cmd.ProcessState.ExitCode(), "worker %s: %s", w.name, w.stderr.String())
		}
	}
}

// killServer kills a server and follows the groups it led.
// gap is how the completions after a kill went.
type gap struct {
	stall time.Duration // the longest time without a completion while 99% of them completed
	tail  time.Duration // from the kill to the last completion
	n     int           // completions measured
}

// minAfter is how many calls must complete after each kill, before the
// next one, for its recovery to be measured.
const minAfter = 500

// measureGap measures the completions (sorted) in [at, until]. The stall
// is the longest time without a completion while the bulk (99%) of the
// calls after the kill complete; the tail is when the last of them did.
func measureGap(ends []time.Time, at, until time.Time) gap {
	var after []time.Time
	for _, e := range ends {
		if !e.Before(at) && !e.After(until) {
			after = append(after, e)
		}
	}
	if len(after) == 0 { // nothing completed before the next kill
		return gap{stall: until.Sub(at), tail: until.Sub(at)}
	}
	g, prev := gap{n: len(after)}, at
	for _, e := range after[:(len(after)*99+99)/100] {
		g.stall = max(g.stall, e.Sub(prev))
		prev = e
	}
	g.tail = after[len(after)-1].Sub(at)
	return g
}

// histogram counts the times in each 250ms after at, for 10s.
func histogram(ts []time.Time, at time.Time) string {
	const step, n = 250 * time.Millisecond, 40
	counts := make([]int, n)
	for _, e := range ts {
		if d := e.Sub(at); d >= 0 && d < n*step {
			counts[d/step]++
		}
	}
	var b strings.Builder
	for i, c := range counts {
		if i > 0 && i%4 == 0 {
			b.WriteString(" |")
		}
		fmt.Fprintf(&b, " %d", c)
	}
	return b.String()
}

func killServer(c *natsCluster, o *observer, r *run, name string) (time.Time, error) {
	i := c.index(name)
	if i < 0 {
		return time.Time{}, fmt.Errorf("no server %q", name)
	}
	before := o.leaders(r)
	c.servers[i].kill()
	at := time.Now()
	rc := o.follow(r, name, at, before)
	r.mu.Lock()
	r.recoveries = append(r.recoveries, rc)
	r.mu.Unlock()
	return at, nil
}

// restartAll restarts every dead server and waits a moment for them to
// catch up, so that the next scenario starts on a whole cluster.
func restartAll(t *testing.T, c *natsCluster) error {
	for i, s := range c.servers {
		if !s.alive() {
			if err := c.restart(t, i); err != nil {
				return err
			}
		}
	}
	time.Sleep(2 * time.Second)
	return nil
}

func killStreamLeader(t *testing.T, c *natsCluster, o *observer, r *run) ([]time.Time, []string, error) {
	leader, err := o.streamLeader(r.setup.Stream)
	if err != nil {
		return nil, nil, err
	}
	at, err := killServer(c, o, r, leader)
	if err != nil {
		return nil, nil, err
	}
	t.Logf("killed the stream leader %s", leader)
	waitRunEnd(r)
	return []time.Time{at}, nil, restartAll(t, c)
}

func killWatcherServer(t *testing.T, c *natsCluster, o *observer, r *run) ([]time.Time, []string, error) {
	name, err := o.watcherServer(r.setup.Bucket)
	if err != nil {
		return nil, nil, err
	}
	at, err := killServer(c, o, r, name)
	if err != nil {
		return nil, nil, err
	}
	leader, _ := o.streamLeader(r.setup.Stream)
	t.Logf("killed %s, which held the submitter's watcher (stream leader %s)", name, leader)
	waitRunEnd(r)
	return []time.Time{at}, nil, restartAll(t, c)
}

// follower is the server that worker-and-follower kills: the last, which
// prepareFollower makes lead none of the run's groups.
const follower = "s2"

// prepareFollower makes the follower lead neither the calls stream, nor
// its consumer, nor the bucket: "a non-leader server".
func prepareFollower(_ *testing.T, _ *natsCluster, o *observer, r *run) error {
	return o.moveLeaders(r, follower, []string{"s0", "s1"})
}

func killWorkerAndFollower(t *testing.T, c *natsCluster, o *observer, r *run) ([]time.Time, []string, error) {
	leader, err := o.streamLeader(r.setup.Stream)
	if err != nil {
		return nil, nil, err
	}
	r.workers[0].kill()
	at, err := killServer(c, o, r, follower)
	if err != nil {
		return nil, nil, err
	}
	t.Logf("killed worker %s and server %s (stream leader %s)", r.workers[0].name, follower, leader)
	waitRunEnd(r)
	return []time.Time{at}, []string{r.workers[0].name}, restartAll(t, c)
}

func killTwoOfThree(t *testing.T, c *natsCluster, o *observer, r *run) ([]time.Time, []string, error) {
	leader, err := o.streamLeader(r.setup.Stream)
	if err != nil {
		return nil, nil, err
	}
	// The leader and one other: the one left has no quorum.
	at, err := killServer(c, o, r, leader)
	if err != nil {
		return nil, nil, err
	}
	for _, cfg := range c.cfgs {
		if cfg.Name != leader {
			if _, err := killServer(c, o, r, cfg.Name); err != nil {
				return nil, nil, err
			}
			t.Logf("killed %s and %s for 10s", leader, cfg.Name)
			break
		}
	}
	time.Sleep(10 * time.Second)
	restarted := time.Now()
	for i, s := range c.servers {
		if !s.alive() {
			if err := c.restart(t, i); err != nil {
				return nil, nil, err
			}
		}
	}
	t.Logf("both back %v after the restart began", time.Since(restarted).Round(10*time.Millisecond))
	_ = at
	waitRunEnd(r)
	// The gap is measured from the restart: during the 10s nothing can
	// complete, by design.
	return []time.Time{restarted}, nil, restartAll(t, c)
}

func killEachInTurn(t *testing.T, c *natsCluster, o *observer, r *run) ([]time.Time, []string, error) {
	var kills []time.Time
	for i := range c.servers {
		ran := r.progress()
		at, err := killServer(c, o, r, c.cfgs[i].Name)
		if err != nil {
			return nil, nil, err
		}
		kills = append(kills, at)
		t.Logf("killed %s", c.cfgs[i].Name)
		time.Sleep(3 * time.Second)
		if err := c.restart(t, i); err != nil {
			return nil, nil, err
		}
		// The next kill is one server's death only once this one has
		// caught up: every group led, every replica current. And its
		// recovery is measured only if calls complete again before it.
		if err := o.waitHealthy(r); err != nil {
			return nil, nil, err
		}
		for deadline := time.Now().Add(time.Minute); r.progress() < ran+2*minAfter; {
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("fewer than %d calls ran in the minute after killing %s", 2*minAfter, c.cfgs[i].Name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitRunEnd(r)
	return kills, nil, nil
}

// waitRunEnd waits until the run's last calls have run, so that servers
// killed by a scenario are restarted only once its run is done.
func waitRunEnd(r *run) {
	deadline := time.Now().Add(3 * time.Minute)
	for r.ex.Stats().Running > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

// procAttr makes a child die with the test.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
