package flow

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/task"
)

// Reservations (store.Reservation) let a durable run submit the first
// attempts of a mapped node's children without waiting, each, for its
// start record to be durable: a reservation, recorded ahead of them,
// says that children below a bound may have begun attempt 1, and a
// resume counts each of those without a recorded attempt as having begun
// it (priorFromReservations). So every attempt that may have run is
// known to a resume, as when each start was durable before its
// submission, and an attempt number is never used twice; but one commit
// covers hundreds of starts ahead, and a start record goes in the group
// commit after its submission, often with the attempt's end (one row per
// task run and attempt instead of two). Retries, and first attempts of
// plain nodes, still wait for their own start record.

// reserveAhead is how many children past the one beginning a
// reservation covers; it is extended when half of it is left, so that
// the next one is durable before it is needed.
const reserveAhead = 4 * startWindow

// resAsk is a reservation queued by the loop: node's children below n.
type resAsk struct {
	node int32
	n    int
}

// reserved reports whether unit i's attempt may be submitted before its
// start record is durable: a mapped child's first attempt, below its
// node's durable reservation. It asks for the reservation to be extended
// ahead of i (the loop's next commits make it durable).
func (r *run) reserved(i int32, attempt int) bool {
	if attempt != 1 || !r.child(i) {
		return false
	}
	d := r.d
	node := r.units[i].aux
	idx := int(r.recs[i].Index)
	if asked := d.asked[node]; idx+reserveAhead/2 >= asked {
		if want := min(int(r.children(node).n), idx+reserveAhead); want > asked {
			if d.asked == nil {
				d.asked, d.resv = map[int32]int{}, map[int32]int{}
			}
			d.asked[node] = want
			d.mu.Lock()
			d.pending.Reserve = append(d.pending.Reserve, store.Reservation{Node: r.f.nodes[node].name, Children: want, Time: time.Now()})
			d.resAsks = append(d.resAsks, resAsk{node, want})
			d.mu.Unlock()
			d.signal()
		}
	}
	if idx >= d.resv[node] {
		return false
	}
	d.mu.Lock()
	d.resStarts++ // reported back once the start, queued before, is durable
	d.mu.Unlock()
	r.unrec++
	return true
}

// reservedDurable takes in the recorder's report of reservations and
// reserved starts now durable.
func (r *run) reservedDurable(e *recorded) {
	for _, a := range e.res {
		if a.n > r.d.resv[a.node] {
			r.d.resv[a.node] = a.n
		}
	}
	r.unrec -= e.resStarts
}

// priorFromReservations adds to out, for every child below a recorded
// reservation that has no final record and no recorded attempt, a lost
// attempt 1 begun at the reservation's time: it may have been submitted
// (its start record was not yet durable at the crash). Its task run is
// then run again as attempt 2, or, on an executor that collects, collects
// attempt 1 by its call id, as an attempt recorded in flight does. A
// final record lists every attempt its task run made, so a child with one
// keeps what it says.
func (f *Flow) priorFromReservations(ctx context.Context, st store.Store, runID string, trs []store.TaskRun, out map[string]*prior) error {
	rs, err := st.Reservations(ctx, runID)
	if err != nil || len(rs) == 0 {
		return err
	}
	ended := make(map[string]bool, len(trs))
	for _, tr := range trs {
		var s task.State
		if s.UnmarshalText([]byte(tr.State)) == nil && s.Final() {
			ended[tr.Label] = true
		}
	}
	for _, res := range rs {
		id, ok := f.lookup(res.Node)
		if !ok || f.nodes[id].kind != mappedNode {
			return &store.CorruptError{What: "reservations of run " + runID, Err: fmt.Errorf("no mapped node %q in flow %q", res.Node, f.name)}
		}
		b := make([]byte, 0, len(res.Node)+8)
		for k := range res.Children {
			b = strconv.AppendInt(append(append(b[:0], res.Node...), '['), int64(k), 10)
			label := string(append(b, ']'))
			if ended[label] {
				continue
			}
			p := out[label]
			if p == nil {
				p = &prior{}
				out[label] = p
			}
			if !p.keep && len(p.attempts) == 0 {
				p.attempts = []task.Attempt{{N: 1, Start: res.Time}}
			}
		}
	}
	return nil
}
