package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
)

// contender is one way of answering calls: submit starts call i and
// arranges for done to run once its result is back.
type contender interface {
	submit(i int, done func(error)) error
}

// rawJetStream is the floor the cluster executor is measured against: the
// same path built from JetStream alone, with nothing of the executor's
// (no dedup ids, no heartbeats, no create-if-absent, no envelope): a
// 64-byte call published asynchronously to a work-queue stream, a pull
// consumer from which one goroutine fetches as many calls as handlers are
// free (jetstream's Fetch) and hands each to a free handler, which puts a
// result in a key-value bucket and acknowledges the call, and a watcher
// of the bucket that hands the result to the submitter. It runs on its
// own embedded server, set up as the executor's is (file storage in a
// temporary directory). Not Consume or Messages, which prefetch: on this
// machine they stalled for the pull's whole expiry (30 s by default)
// about once in 50,000 calls, which no floor may do.
type rawJetStream struct {
	srv      *natsserver.Server
	pub, sub *nats.Conn
	js       jetstream.JetStream
	watch    jetstream.KeyWatcher
	quit     chan struct{} // closed to stop the handlers
	handlers sync.WaitGroup
	watching chan struct{}
	round    atomic.Int64
	failed   atomic.Int64

	mu      sync.Mutex
	waiting map[string]func(error)
}

// newRawJetStream starts the floor with the given number of handlers.
func newRawJetStream(b *testing.B, handlers int) *rawJetStream {
	b.Helper()
	srv, err := natsserver.Start(natsserver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	r := &rawJetStream{srv: srv, waiting: make(map[string]func(error)),
		watching: make(chan struct{}), quit: make(chan struct{})}
	b.Cleanup(r.close)
	if r.pub, err = nats.Connect("", nats.InProcessServer(srv)); err != nil {
		b.Fatal(err)
	}
	if r.sub, err = nats.Connect("", nats.InProcessServer(srv)); err != nil {
		b.Fatal(err)
	}
	if r.js, err = jetstream.New(r.pub, jetstream.WithPublishAsyncMaxPending(1<<16),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { r.failed.Add(1) })); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	stream, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW_CALLS", Subjects: []string{"raw.calls"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	kv, err := r.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "raw-results", History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	if r.watch, err = kv.WatchAll(ctx, jetstream.UpdatesOnly()); err != nil {
		b.Fatal(err)
	}
	go r.results()

	wjs, err := jetstream.New(r.sub)
	if err != nil {
		b.Fatal(err)
	}
	wkv, err := wjs.KeyValue(ctx, "raw-results")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw-workers", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		b.Fatal(err)
	}
	wcons, err := wjs.Consumer(ctx, "RAW_CALLS", "raw-workers")
	if err != nil {
		b.Fatal(err)
	}
	// One fetcher asks for as many calls as handlers are free, and hands
	// each to a free handler as it arrives.
	work := make(chan jetstream.Msg)
	free := make(chan struct{}, handlers)
	for range handlers {
		free <- struct{}{}
	}
	r.handlers.Add(1)
	go func() {
		defer r.handlers.Done()
		for {
			n := 0
			select {
			case <-free:
				n = 1
			case <-r.quit:
				return
			}
			for more := true; more; {
				select {
				case <-free:
					n++
				default:
					more = false
				}
			}
			batch, err := wcons.Fetch(n, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				r.failed.Add(1)
				return
			}
			got := 0
			for m := range batch.Messages() {
				got++
				select {
				case work <- m:
				case <-r.quit:
					return
				}
			}
			for ; got < n; got++ {
				free <- struct{}{}
			}
		}
	}()
	result := []byte("result")
	for range handlers {
		r.handlers.Add(1)
		go func() {
			defer r.handlers.Done()
			for {
				var m jetstream.Msg
				select {
				case m = <-work:
				case <-r.quit:
					return
				}
				key, _, _ := bytes.Cut(m.Data(), []byte{' '})
				if _, err := wkv.Put(ctx, string(key), result); err != nil {
					r.failed.Add(1)
				}
				if err := m.Ack(); err != nil {
					r.failed.Add(1)
				}
				free <- struct{}{}
			}
		}()
	}
	return r
}

// results hands each result the watcher delivers to its submitter.
func (r *rawJetStream) results() {
	defer close(r.watching)
	for e := range r.watch.Updates() {
		if e == nil {
			continue
		}
		r.mu.Lock()
		done := r.waiting[e.Key()]
		delete(r.waiting, e.Key())
		r.mu.Unlock()
		if done != nil {
			done(nil)
		}
	}
}

func (r *rawJetStream) submit(i int, done func(error)) error {
	key := "r" + strconv.FormatInt(r.round.Load(), 10) + "." + strconv.Itoa(i)
	data := make([]byte, 64)
	copy(data, key)
	for j := len(key); j < len(data); j++ {
		data[j] = ' '
	}
	r.mu.Lock()
	r.waiting[key] = done
	r.mu.Unlock()
	if _, err := r.js.PublishAsync("raw.calls", data); err != nil {
		r.mu.Lock()
		delete(r.waiting, key)
		r.mu.Unlock()
		return err
	}
	return nil
}

func (r *rawJetStream) close() {
	close(r.quit)
	r.handlers.Wait()
	if r.watch != nil {
		_ = r.watch.Stop()
		<-r.watching
	}
	for _, nc := range []*nats.Conn{r.pub, r.sub} {
		if nc != nil {
			nc.Close()
		}
	}
	r.srv.Shutdown()
}

// clusterContender is the cluster executor as a contender.
type clusterContender struct {
	ex  executor.Executor
	run string
}

func (c *clusterContender) submit(i int, done func(error)) error {
	f, err := c.ex.Submit(context.Background(), executor.Call{Handler: noop, Input: i, RunID: c.run + strconv.Itoa(i)})
	if err != nil {
		return err
	}
	f.OnDone(func() {
		_, err, _ := f.Result()
		done(err)
	})
	return nil
}

// tally is what one contender did over the rounds of a benchmark.
type tally struct {
	calls   int
	elapsed time.Duration
	cpu     float64 // seconds of the process's CPU time; negative if unknown
	lat     []time.Duration
}

// drive runs calls first..first+n-1 on c with at most window in flight,
// from one submitting goroutine, and adds what it saw to t.
func drive(b *testing.B, c contender, first, n, window int, t *tally) {
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	var failed atomic.Int64
	lat := make([]time.Duration, n)
	cpu0 := cpuSeconds()
	start := time.Now()
	for j := range n {
		sem <- struct{}{}
		wg.Add(1)
		t0 := time.Now()
		err := c.submit(first+j, func(err error) {
			lat[j] = time.Since(t0)
			if err != nil {
				failed.Add(1)
			}
			<-sem
			wg.Done()
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	t.elapsed += time.Since(start)
	if cpu1 := cpuSeconds(); cpu0 >= 0 && t.cpu >= 0 {
		t.cpu += cpu1 - cpu0
	} else {
		t.cpu = -1
	}
	t.calls += n
	t.lat = append(t.lat, lat...)
	if k := failed.Load(); k > 0 {
		b.Fatalf("%d calls failed", k)
	}
}

// percentile returns the q-th latency of sorted lat in microseconds.
func percentile(lat []time.Duration, q float64) float64 {
	return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3
}

// BenchmarkVsJetStream measures the cluster executor against its floor,
// the raw JetStream path (rawJetStream), at 1, 8 and 256 calls in flight,
// in the same process: they take turns in rounds of b.N/rounds calls
// each, so that all see the same machine. The worker and the floor's
// handlers are as many as the calls in flight, up to 64. cluster has the
// default Setup; cluster-keep keeps taken results for ResultTTL (TakenTTL
// = ResultTTL), so its submitter does not rewrite each result it takes
// (a stream write and a watch delivery per call, the price of the server
// memory goal). Reported: calls per second, p50/p99/max latency, and the
// process's CPU time per call (Unix only) of each, and each executor's
// calls per second over the floor's (the goal is at least 0.9). Run with
// -benchtime=20000x or more.
func BenchmarkVsJetStream(b *testing.B) {
	const rounds = 8
	for _, window := range []int{1, 8, 256} {
		b.Run(fmt.Sprintf("inflight=%d", window), func(b *testing.B) {
			slots := min(window, 64)
			raw := newRawJetStream(b, slots)
			run := "vs-" + strconv.FormatInt(benchRun.Add(1), 10) + "-"
			// keep: taken results are not rewritten with the shorter
			// TakenTTL, a stream write and a watch delivery per call less.
			keep := cluster.Setup{ResultTTL: 10 * time.Minute, TakenTTL: 10 * time.Minute}
			contenders := []contender{raw,
				&clusterContender{ex: benchCluster(b, slots, false), run: run},
				&clusterContender{ex: benchClusterSetup(b, slots, keep), run: run}}
			names := []string{"raw", "cluster", "cluster-keep"}
			tallies := make([]tally, len(contenders))
			// Warm them up: connections, consumers, the first blocks.
			for _, c := range contenders {
				drive(b, c, -1000, 500, window, &tally{})
			}
			raw.round.Add(1)
			per := max(b.N/rounds, 1)
			b.ResetTimer()
			for r := range rounds {
				for k := range contenders {
					k = (k + r) % len(contenders) // rotate who goes first
					drive(b, contenders[k], r*per, per, window, &tallies[k])
				}
			}
			b.StopTimer()
			if n := raw.failed.Load(); n > 0 {
				b.Fatalf("the floor had %d failed requests", n)
			}
			rate := make([]float64, len(contenders))
			for k, t := range tallies {
				slices.Sort(t.lat)
				rate[k] = float64(t.calls) / t.elapsed.Seconds()
				b.ReportMetric(rate[k], names[k]+"-calls/s")
				b.ReportMetric(percentile(t.lat, 0.50), names[k]+"-p50-µs")
				b.ReportMetric(percentile(t.lat, 0.99), names[k]+"-p99-µs")
				b.ReportMetric(percentile(t.lat, 1), names[k]+"-max-µs")
				if t.cpu >= 0 {
					b.ReportMetric(t.cpu/float64(t.calls)*1e6, names[k]+"-cpu-µs/call")
				}
				if k > 0 {
					b.ReportMetric(rate[k]/rate[0], names[k]+"-ratio")
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
