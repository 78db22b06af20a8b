package dashboard

import (
	"net/http"
	"net/url"
	"strconv"
)

// invalidate deletes the cache entries under the form's prefix ("key");
// an empty prefix deletes every entry only when the form says all=1.
func (h *Handler) invalidate(w http.ResponseWriter, r *http.Request) {
	prefix := r.PostForm.Get("prefix")
	if prefix == "" && r.PostForm.Get("all") != "1" {
		h.fail(w, r, http.StatusBadRequest, "Nothing to invalidate", "Give a cache key prefix (or all=1 to invalidate every entry).")
		return
	}
	n, err := h.st.Invalidate(r.Context(), prefix)
	if err != nil {
		h.storeFailed(w, r, "The cache", err)
		return
	}
	back := h.path("/cache") + "?done=invalidate&n=" + strconv.Itoa(n)
	if run := r.PostForm.Get("run"); run != "" {
		back = h.path("/runs/"+url.PathEscape(run)) + "?done=invalidate&n=" + strconv.Itoa(n)
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}
