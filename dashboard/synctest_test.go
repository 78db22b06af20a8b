package dashboard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/dashboard"
	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/sqlite"
)

// streamWriter is a ResponseWriter that keeps what the handler wrote.
type streamWriter struct {
	mu     sync.Mutex
	header http.Header
	buf    strings.Builder
}

func (w *streamWriter) Header() http.Header { return w.header }
func (w *streamWriter) WriteHeader(int)     {}
func (w *streamWriter) Flush()              {}
func (w *streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// take returns what was written since the last take.
func (w *streamWriter) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.buf.String()
	w.buf.Reset()
	return s
}

// TestStreamTimingExactly: on the bubble's clock, a stream sends the live
// part at once, nothing while nothing changes, the change at the first
// poll after it, a keep-alive comment after 15 s of quiet, and ends with
// its request.
func TestStreamTimingExactly(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st, err := sqlite.Open(ctx, filepath.Join(dir, "runs.db"), sqlite.Options{})
		require.NoError(t, err)
		defer st.Close()
		start := time.Now()
		require.NoError(t, st.CreateRun(ctx, store.Run{ID: "r1", Flow: "f", State: "Running", Created: start}))
		h := dashboard.New(st, dashboard.Options{PollInterval: time.Second})

		rctx, cancel := context.WithCancel(ctx)
		w := &streamWriter{header: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(w, httptest.NewRequestWithContext(rctx, http.MethodGet, "/runs/r1/events", nil))
		}()
		synctest.Wait()
		first := w.take()
		assert.True(t, strings.HasPrefix(first, "event: update\n"), first)
		assert.Contains(t, first, "Running for")

		// A running run's page says how long it has run: it changes every
		// second, so a finished run is the quiet case. End it, at 0.5 s.
		time.Sleep(500 * time.Millisecond)
		require.NoError(t, st.Apply(ctx, &store.Batch{RunID: "r1", Run: &store.RunUpdate{State: "Failed", ErrMessage: "boom", Ended: time.Now()}}))
		synctest.Wait()
		assert.Empty(t, w.take(), "nothing before the next poll")
		time.Sleep(500 * time.Millisecond) // t = 1 s: the poll
		synctest.Wait()
		second := w.take()
		assert.Contains(t, second, `data-run-state="Failed"`, "the change, at the first poll after it")

		time.Sleep(14 * time.Second) // t = 15 s: 14 s of quiet
		synctest.Wait()
		assert.Empty(t, w.take(), "nothing while nothing changes")
		time.Sleep(time.Second) // t = 16 s: 15 s since the last write
		synctest.Wait()
		assert.Equal(t, ": keep-alive\n\n", w.take())
		assert.Equal(t, 16*time.Second, time.Since(start))

		// A finished run is not rendered again until something is written
		// to it: a retry request is, and shows at the next poll.
		require.NoError(t, st.RequestRetry(ctx, "r1"))
		synctest.Wait()
		assert.Empty(t, w.take())
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Contains(t, w.take(), `id="retry-requested"`)

		cancel()
		<-done // the stream ends with its request
	})
}
