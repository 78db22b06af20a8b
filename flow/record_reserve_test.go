package flow_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/cluster"
	"github.com/flowline-go/flowline/executor/cluster/natsserver"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// reserveGate applies batches up to and including the first that makes a
// reservation durable, then waits until an attempt has run whose record
// is not durable (ran counts the attempts run; one submitted under the
// reservation), and fails that batch and every later one: the store dies
// while reserved attempts run whose start records are not durable, as a
// crash would leave them. It waits on what ran rather than for a fixed
// time, which a loaded machine could outlast before a child ran.
type reserveGate struct {
	store.Store
	ran      func() int
	reserved atomic.Bool
	tripped  atomic.Bool

	mu      sync.Mutex
	applied map[string]bool // label#n of the attempts applied
}

func (s *reserveGate) Apply(ctx context.Context, b *store.Batch) error {
	if s.tripped.Load() {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, errDown)
	}
	if !s.reserved.Load() {
		if len(b.Reserve) > 0 {
			s.reserved.Store(true)
		}
		err := s.Store.Apply(ctx, b)
		if err == nil {
			s.mu.Lock()
			if s.applied == nil {
				s.applied = map[string]bool{}
			}
			for _, a := range b.Attempts {
				s.applied[fmt.Sprintf("%s#%d", a.Label, a.N)] = true
			}
			s.mu.Unlock()
		}
		return err
	}
	s.mu.Lock()
	applied := len(s.applied)
	s.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); s.ran() <= applied && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	s.tripped.Store(true)
	return fmt.Errorf("%w: %w", store.ErrUnavailable, errDown)
}

// TestReservedAttemptsAreNeverNumberedAgain: a wide fan-out's children
// past the first window go to the executor under a durable reservation,
// before their own start records are durable; when the run dies there,
// children ran of which the store knows nothing but the reservation, and
// the resume runs them again as attempt 2, never as 1 again: no child
// runs twice under one attempt number, and the others keep attempt 1.
func TestReservedAttemptsAreNeverNumberedAgain(t *testing.T) {
	const n = 300
	var ran counter // "x#attempt"
	work := task.New("work", func(ctx context.Context, x int) (int, error) {
		id, ok := executor.CallInfo(ctx)
		if !ok {
			return 0, fmt.Errorf("no call identity")
		}
		ran.add(fmt.Sprintf("%d#%d", x, id.Attempt))
		return x, nil
	}, task.Options{})
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	b := flow.New("reserved", flow.Options{})
	out := flow.Map(b, work, flow.Const(xs))
	f, err := b.Build()
	require.NoError(t, err)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runs.db")
	gate := &reserveGate{Store: openStore(t, path), ran: ran.total}
	_, err = f.Run(ctx, newPool(t, 8), flow.RunOptions{Store: gate, RunID: "r"})
	require.ErrorIs(t, err, store.ErrUnavailable)

	st := openStore(t, path)
	as, err := st.Attempts(ctx, "r")
	require.NoError(t, err)
	recorded := map[string]bool{}
	for _, a := range as {
		recorded[a.Label] = true
	}
	rs, err := st.Reservations(ctx, "r")
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, "work", rs[0].Node)
	unrecorded := 0
	for x := range n {
		if ran.get(fmt.Sprintf("%d#1", x)) > 0 && !recorded[fmt.Sprintf("work[%d]", x)] {
			unrecorded++
			assert.Less(t, x, rs[0].Children, "work[%d] ran without a record: the reservation covers it", x)
		}
	}
	require.Positive(t, unrecorded, "children ran under the reservation before their start records were durable")

	res, err := f.Resume(ctx, newPool(t, 8), "r", flow.RunOptions{Store: st})
	require.NoError(t, err)
	v, ok := flow.Value(res, out)
	require.True(t, ok)
	assert.Equal(t, xs, v)
	for key, k := range ran.n {
		assert.Equal(t, 1, k, "%s ran %d times: an attempt number used twice", key, k)
	}
	for _, tr := range res.Tasks {
		if !strings.HasPrefix(tr.Task, "work[") {
			continue
		}
		var x int
		_, err := fmt.Sscanf(tr.Task, "work[%d]", &x)
		require.NoError(t, err)
		last := tr.Attempts[len(tr.Attempts)-1].N
		switch {
		case ran.get(fmt.Sprintf("%d#2", x)) > 0:
			assert.Equal(t, 2, last, tr.Task)
			assert.Less(t, x, rs[0].Children, "%s: only a reserved child counts attempt 1 as lost", tr.Task)
		default:
			assert.Equal(t, 1, last, tr.Task)
		}
	}
}

// envCollectReserved makes the collect child (collect_test.go) run
// reservedCollectFlow on a store that stalls once a reservation is
// durable.
const envCollectReserved = "FLOWLINE_COLLECT_RESERVED"

// reservedSetup forgets message ids after 100 ms, so that a call
// submitted again after that would be queued and run again: only a
// collect, which looks in the result bucket, answers it.
var reservedSetup = cluster.Setup{DedupWindow: 100 * time.Millisecond}

// reservedCollectN is wider than the window of attempts begun ahead of
// their start records, so that children past it go out under the
// reservation.
const reservedCollectN = 100

// reservedCollectFlow is map quick over 0..reservedCollectN-1 -> sum,
// counting runs (on the worker, in the test's process).
func reservedCollectFlow(runs *counter) (*flow.Flow, *flow.Node[int], *executor.Registry) {
	quick := task.New("rcollect.quick", func(_ context.Context, x int) (int, error) {
		runs.add(fmt.Sprintf("quick[%d]", x))
		return 10 * x, nil
	}, task.Options{})
	sum := task.New("rcollect.sum", func(_ context.Context, xs []int) (int, error) {
		runs.add("sum")
		t := 0
		for _, x := range xs {
			t += x
		}
		return t, nil
	}, task.Options{})
	xs := make([]int, reservedCollectN)
	for i := range xs {
		xs[i] = i
	}
	b := flow.New("rcollect", flow.Options{})
	total := flow.Add(b, sum, flow.Map(b, quick, flow.Const(xs)))
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	reg, err := task.NewRegistry(quick, sum)
	if err != nil {
		panic(err)
	}
	return f, total, reg
}

// stallAfterReserve applies batches until one holds the start of a child
// past the first window (64, flow's startWindow), which can only have
// gone out under a reservation, and then never returns from Apply: the
// attempts submitted under the reservation have no start record when the
// process is killed.
type stallAfterReserve struct {
	store.Store
	stalled atomic.Bool
}

func (s *stallAfterReserve) Apply(ctx context.Context, b *store.Batch) error {
	for _, a := range b.Attempts {
		var k int
		if _, err := fmt.Sscanf(a.Label, "rcollect.quick[%d]", &k); err == nil && a.State == "Running" && k >= 64 {
			s.stalled.Store(true)
		}
	}
	if s.stalled.Load() {
		<-ctx.Done() // the recorder's context never ends: the process is killed here
		return ctx.Err()
	}
	return s.Store.Apply(ctx, b)
}

// TestResumeCollectsReservedClusterCalls: a submitter on the cluster
// executor publishes children's calls under a reservation, before their
// start records are durable, and dies; the worker finishes them; the
// resume collects each by its call id (attempt 1, the lost one) instead of
// running it again, as for the children whose starts were recorded.
func TestResumeCollectsReservedClusterCalls(t *testing.T) {
	ctx := context.Background()
	srv, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	var runs counter
	f, total, reg := reservedCollectFlow(&runs)
	w, err := cluster.NewWorker(cluster.WorkerOptions{Connection: cluster.Connection{Server: srv},
		Registry: reg, Executor: newPool(t, 4), Concurrency: 4, Setup: reservedSetup})
	require.NoError(t, err)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		assert.NoError(t, w.Shutdown(sctx))
	})

	path := filepath.Join(t.TempDir(), "runs.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCollectURL+"="+srv.ClientURL(), envCollectStore+"="+path, envCollectReserved+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for runs.total() < reservedCollectN && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runs.total(); n != reservedCollectN {
		// The child's output is read only once it has exited: until then
		// exec's copying goroutine writes to out.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		killed = true
		t.Fatalf("the worker ran %d of %d calls within 30s; the child said: %s", n, reservedCollectN, out.String())
	}
	waitResults(t, srv.ClientURL(), reservedCollectN)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killed = true

	st := openStore(t, path)
	as, err := st.Attempts(ctx, collectRun)
	require.NoError(t, err)
	started := map[string]bool{}
	for _, a := range as {
		started[a.Label] = true
	}
	require.Len(t, started, 64, "the first window's starts are recorded; the rest went out under the reservation, without")
	rs, err := st.Reservations(ctx, collectRun)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, reservedCollectN, rs[0].Children)

	time.Sleep(300 * time.Millisecond) // past the dedup window: a call submitted again would run again
	ex, err := cluster.New(cluster.Options{Connection: cluster.Connection{Server: srv}, Setup: reservedSetup})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, ex.Shutdown(ctx)) })
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a call lost between submitter and bucket would hang
	defer cancel()
	var res *flow.Result
	for { // the dead submitter's lease runs out within its TTL (1 s)
		res, err = f.Resume(rctx, ex, collectRun, flow.RunOptions{Store: st})
		if !errors.Is(err, store.ErrLeaseHeld) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, err, res.Report())
	v, ok := flow.Value(res, total)
	require.True(t, ok, res.Report())
	assert.Equal(t, 10*reservedCollectN*(reservedCollectN-1)/2, v)
	for x := range reservedCollectN {
		label := fmt.Sprintf("quick[%d]", x)
		assert.Equal(t, 1, runs.get(label), "%s: collected, not run again", label)
		tr, ok := res.Task("rcollect." + label)
		require.True(t, ok)
		require.NotEmpty(t, tr.Attempts)
		assert.Equal(t, 1, tr.Attempts[len(tr.Attempts)-1].N, "%s: attempt 1 collected (start recorded: %v)", label, started["rcollect."+label])
		assert.Equal(t, task.Success, tr.State)
	}
	assert.Equal(t, uint64(reservedCollectN+1), w.Stats().Ran, "every child once before the crash, sum after: nothing ran twice")
}
