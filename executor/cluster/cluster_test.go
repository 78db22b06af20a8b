package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
)

// workerEnv, when set, turns the test binary into a cluster worker process
// connecting to the URL it holds; workerEnv+"_NAME" names the worker.
const workerEnv = "FLOWLINE_CLUSTER_TEST_WORKER"

func TestMain(m *testing.M) {
	if url := os.Getenv(workerEnv); url != "" {
		os.Exit(workerMain(url))
	}
	goleak.VerifyTestMain(m)
}

// workerConcurrency is the slots of every test worker.
const workerConcurrency = 4

// fast is a Setup for tests: short ack wait, so that a lost worker's calls
// are taken over quickly.
func fast(s cluster.Setup) cluster.Setup {
	if s.AckWait == 0 {
		s.AckWait = time.Second
	}
	return s
}

// workerMain is a worker process: it serves the suite's tasks on a local
// executor until SIGTERM, then drains for up to 5 seconds. Abandoned soft
// work still running then dies with the process, which is what makes a
// worker process the right home for the suite's stubborn tasks.
func workerMain(url string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Info})
	ex := local.New(local.Options{Logger: logger})
	err := cluster.Serve(ctx, cluster.WorkerOptions{
		Connection:   cluster.Connection{URL: url},
		Setup:        fast(cluster.Setup{}),
		Registry:     executortest.Registry(),
		Executor:     ex,
		Concurrency:  workerConcurrency,
		Name:         os.Getenv(workerEnv + "_NAME"),
		Logger:       logger,
		DrainTimeout: 5 * time.Second,
	})
	if err != nil {
		logger.Error("worker failed", "error", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := ex.Shutdown(sctx); err != nil {
		logger.Info("leaving abandoned work behind", "error", err)
	}
	return 0
}

// workerProcess is a worker running as a child process of the test.
type workerProcess struct {
	cmd    *exec.Cmd
	stderr *executortest.LogBuffer
	done   chan struct{} // closed once the process has been waited for
	err    error
}

// startWorkerProcess re-executes the test binary as a worker connecting to
// url. The test's cleanup stops it with SIGTERM (SIGKILL if it lingers)
// and logs its stderr if the test failed.
func startWorkerProcess(t *testing.T, url, name string) *workerProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Under -race, a process sleeps a second at exit by default, waiting
	// for late reports; a worker has nothing to wait for.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), workerEnv+"="+url, workerEnv+"_NAME="+name, "GORACE="+gorace)
	wp := &workerProcess{cmd: cmd, stderr: &executortest.LogBuffer{}, done: make(chan struct{})}
	cmd.Stderr = wp.stderr
	cmd.SysProcAttr = dieWithParent() // Linux only: sysproc_*_test.go
	require.NoError(t, cmd.Start())
	go func() {
		wp.err = cmd.Wait()
		close(wp.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-wp.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-wp.done
		}
		if t.Failed() {
			t.Logf("worker %s stderr:\n%s", name, wp.stderr.String())
		}
	})
	return wp
}

// kill sends SIGKILL to the worker and waits until it is dead.
func (wp *workerProcess) kill() {
	_ = wp.cmd.Process.Kill()
	<-wp.done
}

// waitPulling waits until n workers that just started ask for calls: a
// worker starts with one pull request for all its slots, so n requests
// wait on the consumer. It uses a connection of its own.
func waitPulling(t *testing.T, url string, setup cluster.Setup, n int) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, consumer := setup.Stream, setup.Consumer
	if stream == "" {
		stream = "FLOWLINE_CALLS"
	}
	if consumer == "" {
		consumer = "flowline-workers"
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := js.Consumer(ctx, stream, consumer)
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = c.Info(ctx)
		}
		cancel()
		if err == nil && info.NumWaiting >= n {
			return
		}
		require.True(t, time.Now().Before(deadline), "workers not pulling after 30s (last error %v)", err)
		time.Sleep(10 * time.Millisecond)
	}
}

// startServer starts an embedded server listening on loopback, stopped
// when the test ends (a second Shutdown is harmless).
func startServer(t *testing.T) *natsserver.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	return srv
}

// startWorker starts an in-process worker on a local executor and shuts
// both down when the test ends (after the executor under test, if that
// one's cleanup is registered later).
func startWorker(t *testing.T, opts cluster.WorkerOptions) *cluster.Worker {
	t.Helper()
	ex := local.New(local.Options{})
	if opts.Executor == nil {
		opts.Executor = ex
	}
	if opts.Registry == nil {
		opts.Registry = executortest.Registry()
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = workerConcurrency
	}
	opts.Setup = fast(opts.Setup)
	w, err := cluster.NewWorker(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, w.Shutdown(ctx))
		require.NoError(t, ex.Shutdown(ctx))
	})
	return w
}

func TestConformance(t *testing.T) {
	n := 0
	executortest.Run(t, executortest.Config{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			srv := startServer(t)
			ex, err := cluster.New(cluster.Options{Logger: logger, Setup: fast(cluster.Setup{}),
				Connection: cluster.Connection{Server: srv}, StopServer: true})
			require.NoError(t, err)
			// Workers are processes: the suite leaves stubborn soft work
			// running (an hour-long sleep that ignores its context), which
			// only a process can take away when the check ends.
			n++
			startWorkerProcess(t, ex.ClientURL(), fmt.Sprintf("conformance-%d", n))
			waitPulling(t, ex.ClientURL(), cluster.Setup{}, 1)
			return ex
		},
		OutOfProcess: true,
		// A timed-out call is answered by the worker's executor at the
		// limit; the answer then crosses NATS twice (the result into the
		// bucket, the bucket's update to the submitter), and the call also
		// waited in the stream before it started. Unloaded that is well
		// under a millisecond; on a loaded 2-core machine under -race it
		// can take tens of milliseconds.
		SoftSlack: 250 * time.Millisecond,
	})
}

// newTestCluster is an executor with its own embedded server and one
// worker process serving executortest.Registry on executor/local.
func newTestCluster(t *testing.T, logger hclog.Logger, name string) executor.Executor {
	t.Helper()
	srv := startServer(t)
	ex, err := cluster.New(cluster.Options{Logger: logger, Setup: fast(cluster.Setup{}),
		Connection: cluster.Connection{Server: srv}, StopServer: true})
	require.NoError(t, err)
	startWorkerProcess(t, ex.ClientURL(), name)
	waitPulling(t, ex.ClientURL(), cluster.Setup{}, 1)
	return ex
}

// The embedded server takes messages of 1 MiB; a call's envelope and a
// result's record take a little of it.
const maxPayload = 1 << 20

func TestStress(t *testing.T) {
	n := 0
	executortest.Stress(t, executortest.StressConfig{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			n++
			return newTestCluster(t, logger, fmt.Sprintf("stress-%d", n))
		},
		OutOfProcess: true,
		// Scaled for one worker process of 4 slots on a loaded 2-core
		// machine under -race: calls cross NATS twice.
		Calls:      400,
		Submitters: 16,
		Limit:      50 * time.Millisecond,
		MaxInput:   maxPayload - 512,
		MaxResult:  maxPayload - 512,
	})
}
