package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// assetVersion changes with the assets, so that browsers may cache them.
var assetVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := assetFS.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

// pages are the parsed templates, one set per page.
type pages struct {
	runs, run, cache, problem *template.Template
	runsLive, runLive         *template.Template
}

// page is what every template gets.
type page struct {
	Title  string
	Base   string
	Asset  string
	Token  string
	Nav    string // "runs" or "cache"
	Flash  string
	Status int
	Data   any
}

func parsePages(h *Handler) *pages {
	funcs := template.FuncMap{
		"when":    h.when,
		"clock":   h.clock,
		"dur":     fmtDur,
		"since":   func(a, b time.Time) string { return fmtDur(b.Sub(a)) },
		"anchor":  anchor,
		"esc":     url.PathEscape,
		"query":   url.QueryEscape,
		"color":   stateColor,
		"short":   shorten,
		"flows":   h.flowNames,
		"states":  func() []string { return runStates },
		"add":     func(a, b int) int { return a + b },
		"attempt": attemptText,
		"outcome": outcome,
		"mark":    mark,
		"base":    func() string { return h.base },
	}
	base := template.Must(template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html"))
	one := func(file string) *template.Template {
		return template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+file))
	}
	p := &pages{runs: one("runs.html"), run: one("run.html"), cache: one("cache.html"), problem: one("problem.html")}
	p.runsLive = p.runs.Lookup("runsLive")
	p.runLive = p.run.Lookup("runLive")
	return p
}

func (h *Handler) newPage(title, nav string, data any) *page {
	return &page{Title: title, Base: h.base, Asset: assetVersion, Token: h.token, Nav: nav, Data: data, Status: http.StatusOK}
}

// render executes t into a buffer first, so that a failing template
// never sends half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, t *template.Template, p *page) {
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		h.log.Error("page failed to render", "path", r.URL.Path, "error", err)
		http.Error(w, "dashboard: the page failed to render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b.Bytes())
}

// fail answers with a page saying what went wrong.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	p := h.newPage(title, "", struct{ Title, Detail string }{title, detail})
	p.Status = status
	h.render(w, r, h.pages.problem, p)
}

// storeFailed answers for a store error: 404 for store.ErrNotFound, else
// 503 for an unavailable or closed store, else 500; the error is logged.
// A request whose context ended gets a bare 503: nobody reads it.
func (h *Handler) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case r.Context().Err() != nil: // the client went away: nobody reads the answer
		h.log.Debug("request ended before its page", "path", r.URL.Path, "error", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case errors.Is(err, store.ErrNotFound):
		h.fail(w, r, http.StatusNotFound, "Not found", what+" does not exist (it may have been deleted).")
		return
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrClosed):
		h.log.Warn("store unavailable", "path", r.URL.Path, "error", err)
		h.fail(w, r, http.StatusServiceUnavailable, "The run store is unavailable", err.Error())
		return
	}
	h.log.Error("store error", "path", r.URL.Path, "error", err)
	h.fail(w, r, http.StatusInternalServerError, "The run store failed", err.Error())
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, http.StatusNotFound, "Not found", "There is no page at "+r.URL.Path+".")
}

// runsPage is the runs list.
func (h *Handler) runsPage(w http.ResponseWriter, r *http.Request) {
	lq, err := parseListQuery(r.URL.Query(), h.opts.Location, time.Now())
	data := &runsData{Query: lq}
	if err != nil {
		data.Problem = "Bad filter: " + err.Error()
		p := h.newPage("Runs", "runs", data)
		p.Status = http.StatusBadRequest
		h.render(w, r, h.pages.runs, p)
		return
	}
	if err := h.fillRuns(r, data); err != nil {
		h.storeFailed(w, r, "The runs", err)
		return
	}
	h.render(w, r, h.pages.runs, h.newPage("Runs", "runs", data))
}

// runsData is the runs list page's.
type runsData struct {
	Query   listQuery
	Problem string
	Runs    []store.Run
	More    bool
	Now     time.Time
	Counts  []stateCount
}

func (h *Handler) fillRuns(r *http.Request, data *runsData) error {
	runs, more, err := h.listRuns(r.Context(), data.Query)
	if err != nil {
		return err
	}
	data.Runs, data.More, data.Now = runs, more, time.Now()
	n := map[string]int{}
	for _, run := range runs {
		n[run.State]++
	}
	for _, s := range runStates {
		if n[s] > 0 {
			data.Counts = append(data.Counts, stateCount{s, n[s]})
		}
	}
	return nil
}

// runPage is one run.
func (h *Handler) runPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v, err := h.loadRun(r.Context(), id)
	if err != nil {
		h.storeFailed(w, r, "Run "+quote(id), err)
		return
	}
	p := h.newPage("Run "+id, "runs", v)
	p.Flash = flashText(r.URL.Query())
	h.render(w, r, h.pages.run, p)
}

func (h *Handler) graphSVG(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v, err := h.loadRun(r.Context(), id)
	if err != nil {
		h.storeFailed(w, r, "Run "+quote(id), err)
		return
	}
	if v.Graph == "" {
		h.fail(w, r, http.StatusNotFound, "No graph", v.FlowNote)
		return
	}
	svg(w, string(v.Graph))
}

func (h *Handler) timelineSVG(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v, err := h.loadRun(r.Context(), id)
	if err != nil {
		h.storeFailed(w, r, "Run "+quote(id), err)
		return
	}
	svg(w, string(v.Timeline))
}

func svg(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(s))
}

func (h *Handler) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	b, err := assetFS.ReadFile("assets/" + path.Base(name))
	if err != nil || strings.Contains(name, "/") {
		h.notFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case ".svg":
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	if r.URL.Query().Get("v") == assetVersion {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(b)
}

// cachePage lists cache entries under a prefix.
func (h *Handler) cachePage(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	es, err := h.st.CacheEntries(r.Context(), prefix)
	if err != nil {
		h.storeFailed(w, r, "The cache", err)
		return
	}
	p := h.newPage("Cache", "cache", struct {
		Prefix  string
		Entries []store.CacheEntry
	}{prefix, es})
	p.Flash = flashText(r.URL.Query())
	h.render(w, r, h.pages.cache, p)
}

// Template helpers.

func (h *Handler) when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(h.opts.Location).Format("2006-01-02 15:04:05 MST")
}

func (h *Handler) clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(h.opts.Location).Format("15:04:05.000")
}

func (h *Handler) flowNames() []string {
	var out []string
	for _, f := range h.opts.Flows {
		if f != nil {
			out = append(out, f.Name())
		}
	}
	return out
}

// anchor makes a task label into an HTML id.
func anchor(label string) string {
	return "task-" + strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return '_'
		}
		return r
	}, label)
}

func pathEscape(s string) string { return url.PathEscape(s) }

func quote(s string) string { return "“" + s + "”" }

func stateColor(s string) string {
	st, ok := parseState(s)
	if !ok {
		return "#ffffff"
	}
	return flow.StateColor(st)
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// attemptText is an attempt's tooltip.
func attemptText(a store.Attempt) string {
	s := "attempt " + strconv.Itoa(a.N) + ": " + a.State
	if d := a.Duration(); d > 0 {
		s += " in " + fmtDur(d)
	}
	if a.Worker != "" {
		s += " on " + a.Worker
	}
	if a.ErrMessage != "" {
		s += "\n" + a.ErrMessage
	}
	return s
}

// outcome names how an attempt ended, for its colour: the state of a
// task run that ended as it did.
func outcome(a store.Attempt) string {
	if a.End.IsZero() {
		return "Running"
	}
	switch executor.Class(a.ErrClass) {
	case "":
		return "Success"
	case executor.ClassTimeout:
		return "TimedOut"
	case executor.ClassSkip:
		return "Skipped"
	case executor.ClassCanceled:
		return "Cancelled"
	}
	return "Failed"
}

// mark is an attempt's outcome in a character or a word, so that it is
// not told by colour alone.
func mark(a store.Attempt) string {
	switch outcome(a) {
	case "Success":
		return "✓"
	case "Failed":
		return "✗"
	case "TimedOut":
		return "timeout" // no clock glyph: fonts without emoji show a box
	case "Cancelled":
		return "⊘"
	case "Skipped":
		return "↷"
	}
	return "…"
}

// flashText says what an action just did, from the fixed set of codes
// the actions redirect with (never text from the request).
func flashText(q url.Values) string {
	switch q.Get("done") {
	case "cancel":
		return "Cancel requested: the run's driver stops it within about a second."
	case "retry":
		return "Retry requested: a service running flow.Serve with this flow restarts it from its failed tasks."
	case "invalidate":
		n := q.Get("n")
		if n == "" {
			n = "0"
		}
		return "Invalidated " + n + " cache entries: the next run of their tasks computes them again."
	}
	return ""
}
