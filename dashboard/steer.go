package dashboard

// canSteer says whether the run actions (cancel, retry) are offered; they
// need store.Store.RequestCancel and RequestRetry, which are coming.
const canSteer = false

// steer registers the run actions.
func (h *Handler) steer(string) {}
