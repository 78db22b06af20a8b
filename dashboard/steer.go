package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/flowline-go/flowline/store"
)

// canSteer says whether the run actions (cancel, retry) are offered.
const canSteer = true

// steer registers the run actions.
func (h *Handler) steer(b string) {
	h.action(b+"/runs/{id}/cancel", h.cancel)
	h.action(b+"/runs/{id}/retry", h.retry)
}

// cancel asks the run's driver to cancel it (store.Store.RequestCancel)
// and goes back to the run's page.
func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	h.request(w, r, "cancel", h.st.RequestCancel)
}

// retry asks that the run be restarted from its failures
// (store.Store.RequestRetry), which a flow.Serve of its flow performs,
// and goes back to the run's page.
func (h *Handler) retry(w http.ResponseWriter, r *http.Request) {
	h.request(w, r, "retry", h.st.RequestRetry)
}

// request records a request and redirects to the run's page, which says
// it was made; a run in the wrong state is 409 with the store's reason.
func (h *Handler) request(w http.ResponseWriter, r *http.Request, what string, ask func(context.Context, string) error) {
	id := r.PathValue("id")
	err := ask(r.Context(), id)
	var re *store.RequestError
	switch {
	case err == nil:
		http.Redirect(w, r, h.path("/runs/"+url.PathEscape(id))+"?done="+what, http.StatusSeeOther)
	case errors.As(err, &re):
		title := "This run cannot be cancelled"
		if what == "retry" {
			title = "This run cannot be retried"
		}
		h.fail(w, r, http.StatusConflict, title, "Run "+quote(id)+" is "+re.State+": "+explain(re)+" Nothing was changed.")
	default:
		h.storeFailed(w, r, "Run "+quote(id), err)
	}
}

func explain(re *store.RequestError) string {
	if errors.Is(re, store.ErrFinished) {
		return "it has already ended."
	}
	return "only a run that ended and did not succeed can be retried."
}
