// Command clustermem measures what the cluster executor costs a NATS
// server in memory over time (issue 15: at 10k calls/s sustained for 10
// minutes, server memory stays under 256 MiB). The server is a process of
// its own (this binary re-executed, running an embedded server with a
// file store), so that its heap and RSS are the server's alone; the
// submitter and a worker (executor/local slots) run in this process and
// drive no-op calls with distinct run ids, at -rate calls per second or
// as fast as -inflight calls in flight allow (-rate 0).
//
//	cd bench && go run ./cmd/clustermem -rate 4000 -duration 150s   # both settings, as scripts/bench-all
//	cd bench && go run ./cmd/clustermem -rate 5000 -duration 10m -modes taken
//
// Two settings run one after the other, each on a fresh server:
//
//   - kept: every result stays ResultTTL (10 minutes) and ids stay in
//     the dedup window for 2 minutes, whether or not the submitter took
//     the result (the settings before taken results were forgotten:
//     Setup{DedupWindow: 2m, TakenTTL: 10m});
//   - taken: the defaults (DedupWindow 30 s; a taken result is rewritten
//     with a per-message TTL of TakenTTL, 45 s).
//
// Every -sample it prints the server's live heap (the heap marked live at
// its last GC), its RSS, the results held in the bucket and the calls in
// the stream. At the end of each setting it prints the live heap per
// result held, and what the measured rate implies at 10k calls/s: the
// kept setting grows for 10 minutes at that cost per call; the taken
// setting levels off once its windows are full, at a heap proportional
// to the rate.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/executor/local"
)

// memLimit is the server process's GOMEMLIMIT (-memlimit).
var memLimit string

// serverEnv turns this binary into the server process; its value is the
// sampling interval.
const serverEnv = "FLOWLINE_CLUSTERMEM_SERVER"

// mem is one sample of the server process's memory.
type mem struct {
	Live  uint64  `json:"live"`  // heap marked live at the last GC
	Total uint64  `json:"total"` // all memory mapped by the Go runtime
	RSS   uint64  `json:"rss"`   // resident set size (Linux; 0 elsewhere)
	CPU   float64 `json:"cpu"`   // seconds of CPU the Go runtime counted, all of it
	GCCPU float64 `json:"gccpu"` // of which the garbage collector's
}

func main() {
	if v := os.Getenv(serverEnv); v != "" {
		os.Exit(serverMain(v))
	}
	rate := flag.Int("rate", 0, "calls per second to submit; 0: as fast as -inflight allows")
	inflight := flag.Int("inflight", 512, "calls in flight at most")
	slots := flag.Int("slots", 64, "worker slots")
	duration := flag.Duration("duration", 2*time.Minute, "how long each setting runs")
	sample := flag.Duration("sample", 10*time.Second, "sampling interval")
	modes := flag.String("modes", "kept,taken", "settings to run, in order: kept, taken")
	flag.StringVar(&memLimit, "memlimit", "", "GOMEMLIMIT of the server process (e.g. 256MiB); empty: none")
	dedup := flag.Duration("dedup", 0, "DedupWindow of the taken setting; 0: the default (30s)")
	taken := flag.Duration("taken", 0, "TakenTTL of the taken setting; 0: the default (45s)")
	flag.Parse()
	fmt.Printf("# clustermem %s  %s  cores=%d  load %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		runtime.Version(), runtime.NumCPU(), loadavg())
	for _, m := range strings.Split(*modes, ",") {
		var setup cluster.Setup
		switch m {
		case "kept":
			setup = cluster.Setup{DedupWindow: 2 * time.Minute, TakenTTL: 10 * time.Minute}
		case "taken":
			setup = cluster.Setup{DedupWindow: *dedup, TakenTTL: *taken}
		default:
			fmt.Fprintln(os.Stderr, "clustermem: unknown setting", m)
			os.Exit(2)
		}
		if err := measure(m, setup, *rate, *inflight, *slots, *duration, *sample); err != nil {
			fmt.Fprintln(os.Stderr, "clustermem:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("# load after: %s\n", loadavg())
}

// serverMain runs an embedded server with a file store until its stdin
// closes. It prints its URL, then a JSON mem line every interval.
func serverMain(interval string) int {
	every, err := time.ParseDuration(interval)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return 2
	}
	srv, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return 1
	}
	defer srv.Shutdown()
	fmt.Println("url", srv.ClientURL())
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	enc := json.NewEncoder(os.Stdout)
	for {
		select {
		case <-done:
			if path := os.Getenv(serverEnv + "_HEAP"); path != "" {
				if f, err := os.Create(path); err == nil {
					_ = pprof.WriteHeapProfile(f)
					_ = f.Close()
				}
			}
			return 0
		case <-t.C:
			_ = enc.Encode(selfMem())
		}
	}
}

func selfMem() mem {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"},
		{Name: "/cpu/classes/total:cpu-seconds"}, {Name: "/cpu/classes/idle:cpu-seconds"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return mem{Live: s[0].Value.Uint64(), Total: s[1].Value.Uint64(), RSS: rss(),
		CPU: s[2].Value.Float64() - s[3].Value.Float64(), GCCPU: s[4].Value.Float64()}
}

// rss reads VmRSS from /proc/self/status; 0 where there is none.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// server is the server process, and its latest memory sample.
type server struct {
	cmd   *exec.Cmd
	stdin io.Closer
	url   string
	last  atomic.Pointer[mem]
	done  chan struct{}
}

func startServer(sample time.Duration) (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serverEnv+"="+sample.String())
	if memLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+memLimit)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "url ") {
		_ = stdin.Close()
		_ = cmd.Wait()
		return nil, errors.New("the server process did not start")
	}
	s.url = strings.TrimPrefix(sc.Text(), "url ")
	go func() {
		defer close(s.done)
		for sc.Scan() {
			var m mem
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				s.last.Store(&m)
			}
		}
	}()
	return s, nil
}

// mem waits for a sample other than after (nil: any) and returns it.
func (s *server) mem(after *mem) *mem {
	for i := 0; i < 400; i++ {
		if m := s.last.Load(); m != nil && m != after {
			return m
		}
		time.Sleep(25 * time.Millisecond)
	}
	return &mem{}
}

func (s *server) stop() {
	_ = s.stdin.Close()
	<-s.done
	_ = s.cmd.Wait()
}

var noop = executor.NewHandler("clustermem.noop", func(context.Context, int) (int, error) { return 0, nil }, nil)

func mib(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

func measure(name string, setup cluster.Setup, rate, inflight, slots int, duration, sample time.Duration) error {
	srv, err := startServer(sample)
	if err != nil {
		return err
	}
	defer srv.stop()
	reg, err := executor.NewRegistry(noop)
	if err != nil {
		return err
	}
	conn := cluster.Connection{URL: srv.url}
	ex, err := cluster.New(cluster.Options{Connection: conn, Setup: setup, MaxPending: inflight})
	if err != nil {
		return err
	}
	lex := local.New(local.Options{})
	w, err := cluster.NewWorker(cluster.WorkerOptions{Connection: conn, Setup: setup, Registry: reg, Executor: lex, Concurrency: slots})
	if err != nil {
		return err
	}
	nc, err := nats.Connect(srv.url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	base := *srv.mem(nil)
	fmt.Printf("\n## %s: DedupWindow %v, TakenTTL %v, ResultTTL 10m; rate %s, %d in flight, %d worker slots, %v; server GOMEMLIMIT %q\n",
		name, or(setup.DedupWindow, 30*time.Second), or(setup.TakenTTL, 45*time.Second), rateName(rate), inflight, slots, duration, memLimit)
	fmt.Printf("%8s %10s %8s %10s %10s %10s %10s %8s\n", "t", "calls", "calls/s", "live MiB", "rss MiB", "go MiB", "results", "queued")
	fmt.Printf("%8s %10d %8s %10s %10s %10s %10d %8d\n", "0s", 0, "-", mib(base.Live), mib(base.RSS), mib(base.Total), 0, 0)

	var done, failed atomic.Uint64
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		drive(ctx, ex, name, rate, inflight, &done, &failed)
	}()

	start := time.Now()
	var peak mem
	last, lastDone, lastAt := srv.last.Load(), uint64(0), start
	var results uint64
	// Once both windows are full, what the server holds levels off: the
	// samples from then on give the plateau.
	full := max(or(setup.DedupWindow, 30*time.Second), or(setup.TakenTTL, 45*time.Second)) + sample
	var plateau struct {
		n          int
		live, rss  float64
		calls, end uint64 // calls done at from, and at upto
		from, upto time.Time
	}
	for ctx.Err() == nil {
		m := srv.mem(last)
		last = m
		now, n := time.Now(), done.Load()
		results, queued := counts(js, setup)
		fmt.Printf("%8s %10d %8.0f %10s %10s %10s %10d %8d\n", now.Sub(start).Round(time.Second), n,
			float64(n-lastDone)/now.Sub(lastAt).Seconds(), mib(m.Live), mib(m.RSS), mib(m.Total), results, queued)
		lastDone, lastAt = n, now
		peak.Live, peak.RSS, peak.Total = max(peak.Live, m.Live), max(peak.RSS, m.RSS), max(peak.Total, m.Total)
		if now.Sub(start) >= full && ctx.Err() == nil {
			if plateau.n == 0 {
				plateau.from, plateau.calls = now, n
			}
			plateau.n++
			plateau.live += float64(m.Live)
			plateau.rss += float64(m.RSS)
			plateau.upto, plateau.end = now, n
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	end := *last
	results, _ = counts(js, setup)
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Shutdown(sctx); err != nil {
		return err
	}
	if err := lex.Shutdown(sctx); err != nil {
		return err
	}
	if err := ex.Shutdown(sctx); err != nil {
		return err
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%s: %d calls failed", name, f)
	}
	r := float64(done.Load()) / elapsed.Seconds()
	grown := float64(end.Live) - float64(base.Live)
	fmt.Printf("%s: %d calls, %.0f calls/s; server live heap %s MiB at the end (peak %s), RSS peak %s MiB; %d results held, %.0f B of live heap per result held; server CPU %.1f µs per call, %.0f%% of it GC\n",
		name, done.Load(), r, mib(end.Live), mib(peak.Live), mib(peak.RSS), results, grown/float64(max(results, 1)),
		(end.CPU-base.CPU)/float64(max(done.Load(), 1))*1e6, 100*(end.GCCPU-base.GCCPU)/max(end.CPU-base.CPU, 1e-9))
	switch {
	case name == "kept":
		// Results stay 10 minutes: at 10k/s, 6M of them. Every one at
		// this cost (its dedup id included, which goes after 2 minutes)
		// bounds the heap from above.
		fmt.Printf("%s: at 10k calls/s for 10 min (6M results): at most %.0f MiB of live heap at this cost per result\n",
			name, (float64(base.Live)+grown/float64(max(results, 1))*6e6)/(1<<20))
	case plateau.n < 2:
		fmt.Printf("%s: not levelled off: run longer than %v to see the plateau\n", name, full+2*sample)
	default:
		// Levelled off: what is held scales with the rate.
		pr := float64(plateau.end-plateau.calls) / plateau.upto.Sub(plateau.from).Seconds()
		live, rss := plateau.live/float64(plateau.n), plateau.rss/float64(plateau.n)
		scale := 10000 / pr
		fmt.Printf("%s: levelled off after %v at %.0f calls/s: live heap %s MiB, RSS %s MiB (mean of %d samples); %.1f KiB of live heap per call/s over the idle server\n",
			name, full, pr, mib(uint64(live)), mib(uint64(rss)), plateau.n, (live-float64(base.Live))/pr/1024)
		fmt.Printf("%s: at 10k calls/s with these windows (x%.1f): about %.0f MiB of live heap, %.0f MiB RSS\n",
			name, scale, (float64(base.Live)+(live-float64(base.Live))*scale)/(1<<20), (float64(base.RSS)+(rss-float64(base.RSS))*scale)/(1<<20))
	}
	return nil
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func rateName(rate int) string {
	if rate <= 0 {
		return "unbounded"
	}
	return strconv.Itoa(rate) + "/s"
}

// counts returns the results in the bucket and the calls in the stream.
func counts(js jetstream.JetStream, setup cluster.Setup) (results, queued uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := js.Stream(ctx, "KV_flowline-results"); err == nil {
		results = s.CachedInfo().State.Msgs
	}
	if s, err := js.Stream(ctx, "FLOWLINE_CALLS"); err == nil {
		queued = s.CachedInfo().State.Msgs
	}
	return results, queued
}

// drive submits no-op calls with distinct run ids until ctx ends, at rate
// per second (0: unbounded), with at most inflight in flight, and waits
// for the last ones.
func drive(ctx context.Context, ex *cluster.Executor, name string, rate, inflight int, done, failed *atomic.Uint64) {
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	defer wg.Wait()
	const tick = 10 * time.Millisecond
	start := time.Now()
	run := name + "-" + strconv.FormatInt(start.UnixNano(), 36) + "-"
	for i := 0; ctx.Err() == nil; i++ {
		if rate > 0 {
			// Call i is due at i/rate seconds; wait for its tick.
			if due := start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second))); time.Until(due) > tick {
				t := time.NewTimer(time.Until(due))
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		f, err := ex.Submit(context.Background(), executor.Call{Handler: noop, Input: i, RunID: run + strconv.Itoa(i)})
		if err != nil {
			failed.Add(1)
			<-sem
			continue
		}
		wg.Add(1)
		f.OnDone(func() {
			if _, err, _ := f.Result(); err != nil {
				failed.Add(1)
			}
			done.Add(1)
			<-sem
			wg.Done()
		})
	}
}
