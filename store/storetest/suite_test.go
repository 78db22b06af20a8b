package storetest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/store/storetest"
)

// brokenEnv names the broken store that TestBrokenTarget runs the suite
// against, in a child test process.
const brokenEnv = "STORETEST_BROKEN"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// broken wraps the SQLite store and breaks one promise of the contract.
type broken struct {
	*sqlite.Store
	how string
}

func (b *broken) Apply(ctx context.Context, batch *store.Batch) error {
	if b.how == "ignores-fencing" {
		c := *batch
		c.Owner = ""
		return b.Store.Apply(ctx, &c)
	}
	return b.Store.Apply(ctx, batch)
}

func (b *broken) Changes(ctx context.Context, runID string) ([]store.Change, error) {
	chs, err := b.Store.Changes(ctx, runID)
	if b.how == "reorders-changes" {
		slices.Reverse(chs)
	}
	return chs, err
}

func (b *broken) Attempts(ctx context.Context, runID string) ([]store.Attempt, error) {
	as, err := b.Store.Attempts(ctx, runID)
	if b.how == "drops-workers" {
		for i := range as {
			as[i].Worker = ""
		}
	}
	return as, err
}

func (b *broken) Acquire(ctx context.Context, id, owner string, ttl time.Duration) (store.Lease, error) {
	if b.how == "shares-leases" {
		if _, err := b.Store.Run(ctx, id); err != nil {
			return store.Lease{}, err
		}
		return store.Lease{Owner: owner, Expires: time.Now().Add(ttl)}, nil
	}
	return b.Store.Acquire(ctx, id, owner, ttl)
}

func (b *broken) Claim(ctx context.Context, key, owner string, ttl time.Duration) (store.CacheEntry, bool, error) {
	if b.how == "never-hits" {
		return store.CacheEntry{}, false, nil
	}
	return b.Store.Claim(ctx, key, owner, ttl)
}

func (b *broken) DeleteRuns(ctx context.Context, cutoff time.Time) (int, error) {
	if b.how == "keeps-everything" {
		return 1, nil
	}
	return b.Store.DeleteRuns(ctx, cutoff)
}

func (b *broken) Run(ctx context.Context, id string) (store.Run, error) {
	r, err := b.Store.Run(ctx, id)
	if b.how == "forgets-requests" {
		r.CancelRequested, r.RetryRequested = time.Time{}, time.Time{}
	}
	return r, err
}

func (b *broken) Runs(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	if b.how == "ignores-filters" {
		f.States, f.Since, f.Until, f.Newest = nil, time.Time{}, time.Time{}, false
	}
	rs, err := b.Store.Runs(ctx, f)
	if b.how == "forgets-requests" {
		for i := range rs {
			rs[i].CancelRequested, rs[i].RetryRequested = time.Time{}, time.Time{}
		}
	}
	return rs, err
}

func (b *broken) RequestCancel(ctx context.Context, id string) error {
	err := b.Store.RequestCancel(ctx, id)
	if b.how == "cancels-finished" && errors.Is(err, store.ErrFinished) {
		return nil
	}
	return err
}

func (b *broken) RequestRetry(ctx context.Context, id string) error {
	if b.how == "retries-anything" {
		if _, err := b.Store.Run(ctx, id); err != nil {
			return err
		}
		return nil
	}
	return b.Store.RequestRetry(ctx, id)
}

func (b *broken) ClaimSlots(ctx context.Context, name, key string, limit int, owner string, holders []string, ttl time.Duration) ([]int, error) {
	if b.how == "overbooks-slots" {
		return b.Store.ClaimSlots(ctx, name, key, limit+1, owner, holders, ttl)
	}
	return b.Store.ClaimSlots(ctx, name, key, limit, owner, holders, ttl)
}

func (b *broken) SwapSlots(ctx context.Context, name, key string, limit int, owner string, release []store.Slot, holders []string, ttl time.Duration) ([]int, error) {
	if b.how == "overbooks-slots" {
		limit++
	}
	return b.Store.SwapSlots(ctx, name, key, limit, owner, release, holders, ttl)
}

func (b *broken) ReserveTokens(ctx context.Context, name, key string, interval time.Duration, burst, n int, horizon time.Duration) ([]time.Time, time.Time, error) {
	if b.how == "double-burst" {
		burst *= 2
	}
	return b.Store.ReserveTokens(ctx, name, key, interval, burst, n, horizon)
}

func (b *broken) TakeTokens(ctx context.Context, name, key string, interval time.Duration, burst, n int) (int, time.Time, error) {
	if b.how == "double-burst" {
		return b.Store.TakeTokens(ctx, name, key, interval, 2*burst, n)
	}
	return b.Store.TakeTokens(ctx, name, key, interval, burst, n)
}

func TestSQLiteThroughTheSuite(t *testing.T) {
	storetest.Run(t, storetest.Config{New: newSQLite})
}

func newSQLite(t *testing.T) store.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "runs.db"), sqlite.Options{})
	require.NoError(t, err)
	return s
}

// TestBrokenTarget is the child side of TestSuiteCatchesBrokenStores.
func TestBrokenTarget(t *testing.T) {
	how := os.Getenv(brokenEnv)
	if how == "" {
		t.Skip("runs only as a child of TestSuiteCatchesBrokenStores")
	}
	storetest.Run(t, storetest.Config{New: func(t *testing.T) store.Store {
		return &broken{Store: newSQLite(t).(*sqlite.Store), how: how}
	}})
}

// TestSuiteCatchesBrokenStores proves that the suite's checks can fail:
// each broken store must fail the checks of the promise it breaks, and
// pass the others.
func TestSuiteCatchesBrokenStores(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("child process")
	}
	for how, mustFail := range map[string][]string{
		"ignores-fencing":  {"Apply/Fenced"},
		"reorders-changes": {"Apply/ChangesInOrderAndOnce"},
		"drops-workers":    {"Apply/RoundTrip"},
		"shares-leases":    {"Leases/AcquireHeldExpireRelease", "Leases/ConcurrentAcquireOneWins"},
		"never-hits":       {"Cache/MissClaimPutHit", "Cache/ClaimHeldByOther", "Cache/Expiry", "Cache/ConcurrentClaimOneWins"},
		"keeps-everything": {"Retention/DeleteOldRuns"},
		"forgets-requests": {"Requests/CancelPendingUntilEnd", "Requests/RetryPendingUntilRestart", "Requests/ListedAndDeleted"},
		"ignores-filters":  {"Filters/StatesAndTimes", "Filters/NewestWithLimit"},
		"cancels-finished": {"Requests/CancelRefusals", "Requests/CancelRacesEnd"},
		"retries-anything": {"Requests/RetryRefusals", "Requests/RetryPendingUntilRestart"},
		"overbooks-slots":  {"Limits/ClaimUpToLimit", "Limits/ConcurrentClaimersNeverExceed"},
		"double-burst":     {"Limits/TokensBurstThenInterval", "Limits/ConcurrentTakersNeverExceed", "Limits/ReserveSpacesTokens"},
	} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenTarget$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+how)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "the suite passed a broken store (%s):\n%s", how, out)
			for _, name := range mustFail {
				assert.Contains(t, string(out), "--- FAIL: TestBrokenTarget/"+name+" ",
					"the suite did not catch %q with %s", how, name)
			}
			assert.Contains(t, string(out), "--- PASS: TestBrokenTarget/Close/AfterCloseIsClosed ",
				"the failure is targeted")
			if t.Failed() {
				lines := strings.Split(string(out), "\n")
				t.Logf("child output:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
			}
		})
	}
}
