// Package dashboard is a web dashboard over a run store (package store):
// an http.Handler that a service mounts to see its flow runs and steer
// them. Pick it when people should look at runs in a browser; use the CLI
// (cmd/flowline) for scripts, and the otel module for traces and metrics
// in the tools you already have.
//
// Pages:
//
//	GET  /                    the runs, newest first, filtered by flow, state and time
//	GET  /runs/{id}           one run: its state, the flow's graph coloured by task state,
//	                          the timeline of its attempts, and a table of its task runs
//	                          with their attempts, errors and durations
//	GET  /runs/{id}/events    Server-Sent Events: the run page's live part, re-rendered
//	                          whenever it changes (the page updates itself without a reload)
//	GET  /events              the same for the runs list (with the list's query)
//	GET  /runs/{id}/graph.svg, /runs/{id}/timeline.svg   the two pictures alone
//	GET  /cache               the cache entries, by key prefix
//	POST /runs/{id}/cancel    asks the run's driver to cancel it (store.Store.RequestCancel)
//	POST /runs/{id}/retry     asks a flow.Serve to restart a failed run from its failures
//	                          (store.Store.RequestRetry)
//	POST /cache/invalidate    deletes the cache entries under a key prefix (store.Store.Invalidate)
//
// Everything it needs is in the binary: templates, CSS and a small script
// are embedded, there is no CDN, no JavaScript build step, and it works
// offline. The pages work without JavaScript too, except live updates.
//
// It has no authentication of its own: anyone who can reach it can see
// every run and cancel or retry them. Mount it behind your service's
// authentication (a middleware that wraps the Handler). Its POSTs are
// protected against cross-site request forgery twice: the request must
// not be cross-origin (net/http's CrossOriginProtection: the browser's
// Sec-Fetch-Site header, or the Origin header compared with Host), and it
// must carry the Handler's token, a random value made by New that every
// form holds in a hidden field named "token". A refused POST gets 403 and
// changes nothing.
//
// Live updates poll the store (Options.PollInterval) for as long as a page
// is open: each open page costs a few store reads per interval. An event
// stream lasts as long as the page, so a server's WriteTimeout ends it
// (the browser reconnects on its own).
package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
)

// Options configure a dashboard. The zero value is a dashboard at "/",
// drawing no graphs, polling every second, logging nothing.
type Options struct {
	// Flows are the flows whose graphs run pages draw, matched by name. A
	// run of a flow not given has its timeline and task table, without a
	// graph; a run recorded with another version of a flow (a different
	// flow.Flow.Hash) gets the given version's graph, with a note saying
	// so.
	Flows []*flow.Flow

	// Logger receives the store errors the pages met (named "dashboard").
	// Nil means no logging.
	Logger hclog.Logger

	// PollInterval is how often an open page's event stream reads the
	// store for changes. Zero or less means one second.
	PollInterval time.Duration

	// BasePath is the path the Handler is mounted under, such as "/dash",
	// without a trailing slash: the Handler serves the paths under it and
	// makes its links with it. Empty means the root. Mount it with
	// mux.Handle(base+"/", h), without http.StripPrefix.
	BasePath string

	// Location is the time zone of the times shown. Nil means time.Local.
	Location *time.Location
}

// Handler is the dashboard: an http.Handler serving the pages and the
// actions listed in the package documentation. It is safe for concurrent
// use and holds no resources of its own: an event stream ends with its
// request.
type Handler struct {
	st    store.Store
	opts  Options
	log   hclog.Logger
	flows map[string]*flow.Flow
	base  string
	token string
	cop   *http.CrossOriginProtection
	mux   *http.ServeMux
	pages *pages
}

var _ http.Handler = (*Handler)(nil)

// New returns a dashboard over st. It panics if st is nil (a programming
// error). Flows with one name in opts.Flows: the last one given is drawn.
func New(st store.Store, opts Options) *Handler {
	if st == nil {
		panic("dashboard: New with a nil store")
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	h := &Handler{
		st:    st,
		opts:  opts,
		log:   opts.Logger.Named("dashboard"),
		flows: make(map[string]*flow.Flow, len(opts.Flows)),
		base:  strings.TrimRight(opts.BasePath, "/"),
		token: newToken(),
		cop:   http.NewCrossOriginProtection(),
		mux:   http.NewServeMux(),
	}
	for _, f := range opts.Flows {
		if f != nil {
			h.flows[f.Name()] = f
		}
	}
	h.pages = parsePages(h)
	b := h.base
	h.mux.HandleFunc("GET "+b+"/{$}", h.runsPage)
	h.mux.HandleFunc("GET "+b+"/events", h.runsEvents)
	h.mux.HandleFunc("GET "+b+"/runs/{id}", h.runPage)
	h.mux.HandleFunc("GET "+b+"/runs/{id}/events", h.runEvents)
	h.mux.HandleFunc("GET "+b+"/runs/{id}/graph.svg", h.graphSVG)
	h.mux.HandleFunc("GET "+b+"/runs/{id}/timeline.svg", h.timelineSVG)
	h.mux.HandleFunc("GET "+b+"/cache", h.cachePage)
	h.mux.HandleFunc("GET "+b+"/assets/{name}", h.asset)
	h.steer(b)
	h.action(b+"/cache/invalidate", h.invalidate)
	h.mux.HandleFunc(b+"/", h.notFound)
	return h
}

// ServeHTTP serves the dashboard's pages and actions.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.Header().Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// Token returns the Handler's form token, which every POST must carry in
// a field named "token" (see the package documentation). A program that
// posts to the dashboard itself (a test, a script) reads it here; a
// browser finds it in every form.
func (h *Handler) Token() string { return h.token }

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// protect refuses cross-origin POSTs and POSTs without the token, with
// 403, before next runs.
func (h *Handler) protect(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h.cop.Check(r); err != nil {
			h.fail(w, r, http.StatusForbidden, "Refused: a cross-site request", "The dashboard takes actions only from its own pages (the request's Sec-Fetch-Site or Origin header says it came from another site). Nothing was changed.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			h.fail(w, r, http.StatusBadRequest, "Bad form", err.Error())
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(h.token)) != 1 {
			h.fail(w, r, http.StatusForbidden, "Refused: the form's token is missing or wrong", "Actions must come from a form of this dashboard (reload the page: the token changes when the service restarts). Nothing was changed.")
			return
		}
		next(w, r)
	}
}

// action registers a POST action at p, and a 405 for other methods.
func (h *Handler) action(p string, fn http.HandlerFunc) {
	h.mux.HandleFunc("POST "+p, h.protect(fn))
	h.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, http.StatusMethodNotAllowed, "Method not allowed", "This is an action: it takes a POST from the dashboard's forms.")
	})
}

// path returns the dashboard's path p (which starts with "/").
func (h *Handler) path(p string) string { return h.base + p }
