package stack_test

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/internal/stack"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stackInUse starts n goroutines that call Grow (or not) and park, and
// returns the runtime's stack memory in use while they are parked.
func stackInUse(n int, grow bool) uint64 {
	var ready sync.WaitGroup
	var done sync.WaitGroup
	release := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			if grow {
				stack.Grow()
			}
			ready.Done()
			<-release
		}()
	}
	ready.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	close(release)
	done.Wait()
	return ms.StackInuse
}

// TestGrowMakesRoom checks that Grow really grows the stack (the compiler
// could drop a frame it sees unused): 256 goroutines parked after Grow
// hold at least 12 KiB of stack each more than 256 that did not call it.
func TestGrowMakesRoom(t *testing.T) {
	// No collection meanwhile: it would shrink the parked stacks.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const n = 256
	plain := stackInUse(n, false)
	grown := stackInUse(n, true)
	if grown < plain || grown-plain < n*12<<10 {
		t.Fatalf("stack in use with %d goroutines: %d B after Grow, %d B without; want at least %d B more",
			n, grown, plain, n*12<<10)
	}
}

// BenchmarkDecodeOnNewGoroutine is the case Grow is for: a new goroutine
// that decodes a small JSON value, with and without Grow first. Compare
// the two rows' ns/op.
func BenchmarkDecodeOnNewGoroutine(b *testing.B) {
	for _, grow := range []bool{false, true} {
		name := "plain"
		if grow {
			name = "grow"
		}
		b.Run(name, func(b *testing.B) {
			data := []byte(`{"a":1,"b":[1,2,3],"c":"x"}`)
			done := make(chan struct{})
			for b.Loop() {
				go func() {
					if grow {
						stack.Grow()
					}
					var v struct {
						A int
						B []int
						C string
					}
					_ = json.Unmarshal(data, &v)
					done <- struct{}{}
				}()
				<-done
			}
		})
	}
}
