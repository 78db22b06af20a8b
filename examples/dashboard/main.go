// Command dashboard is a small service with the flowline dashboard: an
// embedded SQLite run store, four flows (etl succeeds after a retry,
// report fails, slow-api times out, nightly runs for about half a
// minute), a new run every few seconds, the dashboard at / and
// Prometheus metrics at /metrics. It prints the URL and runs until
// interrupted.
//
//	go run ./examples/dashboard -addr 127.0.0.1:8080
//	go run ./examples/dashboard -check   # CI: serve, drive one run of each flow, check the pages
//
// With -check it listens on a free port, runs one of each flow to its
// end, fetches the runs list, a run page and /metrics over HTTP, retries
// the failed run and cancels a long one through the dashboard's own
// forms, checks what it got, and exits non-zero if anything was wrong.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/dashboard"
	"github.com/flowline-go/flowline/executor/pool"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "where to serve the dashboard")
	db := flag.String("db", "", "the SQLite store's file; empty means a new one in a temporary directory, removed on exit")
	every := flag.Duration("every", 8*time.Second, "start a new run this often (0: only the first four)")
	check := flag.Bool("check", false, "serve on a free port, drive one run of each flow to its end, check the pages over HTTP, exit")
	flag.Parse()
	if err := run(*addr, *db, *every, *check); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

// service is the example service: a store, an executor, the flows, and
// the runs it started.
type service struct {
	st      store.Store
	ex      *pool.Executor
	log     hclog.Logger
	etl     *flow.Flow
	report  *flow.Flow
	slow    *flow.Flow
	nightly *flow.Flow
	stepMS  *flow.Parameter[int]
	n       atomic.Int64
	runs    sync.WaitGroup
}

func (s *service) flows() []*flow.Flow { return []*flow.Flow{s.etl, s.report, s.slow, s.nightly} }

// start runs f in the background as a new run and returns its id.
func (s *service) start(ctx context.Context, f *flow.Flow, args ...flow.Arg) string {
	id := fmt.Sprintf("%s-%04d", f.Name(), s.n.Add(1))
	s.runs.Go(func() {
		_, err := f.Run(ctx, s.ex, flow.RunOptions{Store: s.st, RunID: id, Args: args, Logger: s.log})
		if err != nil {
			s.log.Debug("run ended", "run", id, "error", err)
		}
	})
	return id
}

func run(addr, db string, every time.Duration, check bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if db == "" {
		dir, err := os.MkdirTemp("", "flowline-dashboard")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		db = filepath.Join(dir, "runs.db")
	}
	st, err := sqlite.Open(ctx, db, sqlite.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	level := hclog.Info
	if check {
		level = hclog.Warn
	}
	s := &service{st: st, ex: pool.New(pool.Options{Workers: 4}), log: hclog.New(&hclog.LoggerOptions{Name: "example", Level: level}),
		etl: etlFlow(), report: reportFlow(), slow: slowFlow()}
	s.nightly, s.stepMS = nightlyFlow()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.ex.Shutdown(sctx)
	}()

	dash := dashboard.New(st, dashboard.Options{Flows: s.flows(), Logger: s.log})
	mux := http.NewServeMux()
	mux.Handle("/", dash) // a real service puts its authentication in front: the dashboard has none
	mux.Handle("GET /metrics", metrics(st, s.ex))
	if check {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srvCtx, cancelSrv := context.WithCancel(ctx)
	defer cancelSrv()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return srvCtx }} // ends the live streams at shutdown
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/"

	runCtx, cancelRuns := context.WithCancel(ctx)
	var loops sync.WaitGroup
	defer func() {
		cancelRuns()
		loops.Wait()
		s.runs.Wait()
		cancelSrv()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}()
	loops.Go(func() { s.serveFlows(runCtx) })

	if check {
		return s.check(ctx, url, dash.Token())
	}
	fmt.Printf("flowline dashboard at %s (store %s); Ctrl-C to stop\n", url, db)
	s.start(runCtx, s.etl)
	s.start(runCtx, s.report)
	s.start(runCtx, s.slow)
	s.start(runCtx, s.nightly)
	if every > 0 {
		loops.Go(func() { s.keepStarting(runCtx, every) })
	}
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping: cancelling the runs still going")
		return nil
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// keepStarting starts a run of the next flow every interval, so that the
// dashboard always has something going on.
func (s *service) keepStarting(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.start(ctx, s.flows()[i%4])
	}
}
