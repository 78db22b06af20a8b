package store

import "time"

// Reservation bounds the first attempts of a mapped node's children that
// may have been submitted: every child whose index is below Children. A
// durable run records one (in a Batch, as Batch.Reserve) before it
// submits such attempts, ahead of them, so that it need not wait for each
// attempt's own start record to be durable before submitting it, while a
// resume still knows every attempt that may have run: a child below the
// bound without a recorded attempt counts as having begun attempt 1 at
// Time (see flow's docs/durability.md). A run's reservation for a node
// only grows.
type Reservation struct {
	Node     string    // the mapped node's name
	Children int       // the children below this index may have begun their first attempt
	Time     time.Time // when it was made
}
