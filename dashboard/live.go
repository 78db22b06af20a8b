package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/flowline-go/flowline/store"
)

// keepAlive is how often an idle event stream sends a comment, so that
// proxies keep it open and a dead client is noticed.
const keepAlive = 15 * time.Second

// stream serves Server-Sent Events: an "update" event with the fragment
// render makes, now and whenever it changes, polling every
// Options.PollInterval until the client goes away. A render that fails
// sends a "problem" event with the error's text, and the stream goes on
// trying (the store may come back); a run that no longer exists ends it
// with a "gone" event.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, render func(ctx context.Context) ([]byte, error)) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	var last []byte
	lastProblem := ""
	quiet := time.Now()
	t := time.NewTicker(h.opts.PollInterval)
	defer t.Stop()
	for {
		var msg bytes.Buffer
		b, err := render(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrNotFound):
			event(&msg, "gone", "This run no longer exists.")
		case err != nil:
			if p := err.Error(); p != lastProblem {
				lastProblem = p
				h.log.Warn("live update failed", "path", r.URL.Path, "error", err)
				event(&msg, "problem", "Live updates paused: "+p)
			}
		case !bytes.Equal(b, last):
			last, lastProblem = b, ""
			event(&msg, "update", string(b))
		case time.Since(quiet) >= keepAlive:
			msg.WriteString(": keep-alive\n\n")
		}
		if msg.Len() > 0 {
			if _, err := w.Write(msg.Bytes()); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			quiet = time.Now()
		}
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// event writes one event; each line of data gets its own "data:" field,
// which the browser joins with newlines again.
func event(b *bytes.Buffer, name, data string) {
	b.WriteString("event: " + name + "\n")
	for line := range strings.Lines(data) {
		b.WriteString("data: " + strings.TrimRight(line, "\r\n") + "\n")
	}
	if data == "" {
		b.WriteString("data:\n")
	}
	b.WriteString("\n")
}

func (h *Handler) fragment(t *template.Template, p *page) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (h *Handler) runEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var lastKey string
	var last []byte
	h.stream(w, r, func(ctx context.Context) ([]byte, error) {
		// A finished run that nothing wrote to since the last rendering
		// is not rendered again: one read of the run instead of all its
		// task runs and attempts and a page (tens of milliseconds for 1,000 task runs:
		// BenchmarkRunPage). A running run is, for its durations so far.
		run, err := h.st.Run(ctx, id)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprint(run.State, run.Updated.UnixNano(), run.Ended.UnixNano(), run.CancelRequested.UnixNano(), run.RetryRequested.UnixNano())
		if run.Finished() && key == lastKey {
			return last, nil
		}
		v, err := h.loadRun(ctx, id)
		if err != nil {
			return nil, err
		}
		b, err := h.fragment(h.pages.runLive, h.newPage("", "", v))
		if err == nil {
			lastKey, last = key, b
		}
		return b, err
	})
}

func (h *Handler) runsEvents(w http.ResponseWriter, r *http.Request) {
	lq, err := parseListQuery(r.URL.Query(), h.opts.Location, time.Now())
	if err != nil {
		http.Error(w, "dashboard: bad filter: "+err.Error(), http.StatusBadRequest)
		return
	}
	h.stream(w, r, func(ctx context.Context) ([]byte, error) {
		data := &runsData{Query: lq}
		if err := h.fillRuns(r.WithContext(ctx), data); err != nil {
			return nil, err
		}
		return h.fragment(h.pages.runsLive, h.newPage("", "", data))
	})
}
