//go:build linux || darwin

package subprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/internal/frame"
)

// pipeThrough writes stream into a pipe in chunks of the given sizes
// (cycled), kicking the reader between chunks, and returns what a
// frame.Reader over a spinReader of the pipe's other end read: the kinds
// and bodies of the frames, and the error that ended them.
func pipeThrough(t testing.TB, stream []byte, chunks []int, spin time.Duration, linger bool) ([][]byte, error) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	in := newSpinReader(r, spin, linger, nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer w.Close()
		for i := 0; len(stream) > 0; i++ {
			n := len(stream)
			if len(chunks) > 0 {
				n = min(n, max(1, chunks[i%len(chunks)]))
			}
			if _, err := w.Write(stream[:n]); err != nil {
				return
			}
			stream = stream[n:]
			kick(in)
			if i%37 == 1 {
				time.Sleep(time.Duration(i%4) * 100 * time.Microsecond) // let the reader park now and then
			}
		}
	})
	defer wg.Wait()
	fr := frame.NewReader(in, 1<<20)
	var got [][]byte
	for {
		kind, body, err := fr.Next()
		if err != nil {
			return got, err
		}
		got = append(got, append([]byte{kind}, body...))
	}
}

// readAll is what a frame.Reader reads from stream held in memory.
func readAll(stream []byte) ([][]byte, error) {
	fr := frame.NewReader(bytes.NewReader(stream), 1<<20)
	var got [][]byte
	for {
		kind, body, err := fr.Next()
		if err != nil {
			return got, err
		}
		got = append(got, append([]byte{kind}, body...))
	}
}

func frames(n int, rng *rand.Rand) []byte {
	var b []byte
	for i := range n {
		start := len(b)
		b = frame.Begin(b, byte('A'+i%26))
		b = append(b, bytes.Repeat([]byte{byte(i)}, rng.IntN(3000))...)
		var err error
		if b, err = frame.End(b, start, 1<<20); err != nil {
			panic(err)
		}
	}
	return b
}

func TestSpinReaderDeliversEveryByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	stream := frames(300, rng)
	want, wantErr := readAll(stream)
	require.ErrorIs(t, wantErr, io.EOF)
	for _, tc := range []struct {
		name   string
		spin   time.Duration
		linger bool
		chunks []int
	}{
		{"NoSpin", 0, false, []int{1000}},
		{"SpinAfterKick", 50 * time.Microsecond, false, []int{1, 7, 4096, 333}},
		{"SpinLinger", 50 * time.Microsecond, true, []int{5000, 2, 64}},
		{"LongSpin", 5 * time.Millisecond, true, []int{100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pipeThrough(t, stream, tc.chunks, tc.spin, tc.linger)
			require.ErrorIs(t, err, io.EOF)
			require.Equal(t, len(want), len(got))
			for i := range want {
				require.Equal(t, want[i], got[i], "frame %d", i)
			}
		})
	}
}

func TestSpinReaderParksAfterItsSpinAndWakesOnAKick(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	in := newSpinReader(r, time.Millisecond, false, nil).(*spinReader)
	kick(in)
	got := make(chan error, 1)
	buf := make([]byte, 8)
	go func() {
		_, err := io.ReadFull(in, buf)
		got <- err
	}()
	// Hot for 1ms, then parked on the poller.
	require.Eventually(t, in.parked.Load, 10*time.Second, 100*time.Microsecond)
	assert.False(t, in.hot.Load(), "a reader that parked is not hot")
	kick(in) // wakes the parked read: it polls again, then parks again
	require.Eventually(t, func() bool { return in.parked.Load() && !in.hot.Load() }, 10*time.Second, 100*time.Microsecond)
	_, err = w.Write([]byte("12345678"))
	require.NoError(t, err)
	require.NoError(t, <-got)
	assert.Equal(t, "12345678", string(buf))
	// The kick's read deadline was cleared: a later read waits for data.
	go func() {
		_, err := io.ReadFull(in, buf)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("read returned %v without data", err)
	case <-time.After(20 * time.Millisecond):
	}
	w.Close()
	assert.ErrorIs(t, <-got, io.EOF) // nothing read before the end
}

func TestSpinReaderObeysMay(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	in := newSpinReader(r, time.Hour, true, func() bool { return false }).(*spinReader)
	kick(in)
	done := make(chan error, 1)
	go func() {
		_, err := in.Read(make([]byte, 1))
		done <- err
	}()
	// A spin of an hour that may not happen parks at once.
	require.Eventually(t, in.parked.Load, 10*time.Second, 100*time.Microsecond)
	w.Close()
	assert.ErrorIs(t, <-done, io.EOF)
}

func TestWatchHangup(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	lost := make(chan struct{})
	require.True(t, watchHangup(r, func() { close(lost) }))
	_, err = w.Write([]byte("a call"))
	require.NoError(t, err)
	select {
	case <-lost:
		t.Fatal("data in the pipe is not its end")
	case <-time.After(20 * time.Millisecond):
	}
	w.Close()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the end of the pipe's writers was not seen")
	}
}

func FuzzSpinReader(f *testing.F) {
	f.Add(frames(3, rand.New(rand.NewPCG(3, 4))), uint16(1), uint16(7), true)
	f.Add([]byte{0, 0, 0, 2, 'C', 1, 0, 0}, uint16(3), uint16(1), false)
	f.Add(binary.BigEndian.AppendUint32(nil, 1<<30), uint16(2), uint16(2), true)
	f.Fuzz(func(t *testing.T, stream []byte, c1, c2 uint16, linger bool) {
		want, wantErr := readAll(stream)
		got, err := pipeThrough(t, stream, []int{int(c1), int(c2)}, 20*time.Microsecond, linger)
		require.Equal(t, len(want), len(got))
		for i := range want {
			require.Equal(t, want[i], got[i], "frame %d", i)
		}
		if errors.Is(wantErr, io.EOF) || errors.Is(wantErr, io.ErrUnexpectedEOF) {
			require.ErrorIs(t, err, wantErr)
		} else {
			require.Equal(t, wantErr.Error(), err.Error())
		}
	})
}

func TestSpinReaderSkipsPollingAfterContention(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	in := newSpinReader(r, time.Hour, false, nil).(*spinReader)
	in.skip.Store(2) // as after a wait during which another thread got the CPU
	kick(in)
	assert.False(t, in.hot.Load(), "a wait after contention does not poll")
	assert.EqualValues(t, 1, in.skip.Load())
	kick(in)
	kick(in)
	assert.True(t, in.hot.Load(), "the skipped waits are counted down, then polling resumes")
}
