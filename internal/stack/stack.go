// Package stack grows the calling goroutine's stack ahead of deep work, in
// one step while the goroutine is still shallow.
//
// Why: a goroutine starts with a small stack (2 KiB, or the runtime's
// running average), and one that then goes deep (a JSON decode, a flow's
// scheduler) grows it by doubling, each time copying every frame it has
// by then, some 30 of them. Executors that start a goroutine per busy
// period (executor/pool) pay that at every start. Grow pays one copy of
// the few frames there are when it is called instead.
package stack

// Grow makes the calling goroutine's stack at least 16 KiB, at once. On a
// stack that large already it costs its prologue's check and nothing
// else. It never touches the room it makes, so nothing is zeroed; the
// collector shrinks a stack that stays mostly unused, as it does any.
//
//go:noinline
func Grow() {
	if padUsed {
		var pad [padSize]byte
		keep(pad[:])
	}
}

// padSize is the frame Grow makes room for: with the runtime's guard and
// the caller's frames it rounds up to a 16 KiB stack.
const padSize = 12 << 10

// padUsed is never set: it keeps Grow's frame from being optimised away.
var padUsed bool

//go:noinline
func keep([]byte) {}
