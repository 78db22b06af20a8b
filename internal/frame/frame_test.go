package frame_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/internal/frame"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build returns one frame of kind with the fields of fn.
func build(t *testing.T, kind byte, limit int, fn func(b []byte) []byte) []byte {
	t.Helper()
	b := frame.Begin(nil, kind)
	b = fn(b)
	b, err := frame.End(b, 0, limit)
	require.NoError(t, err)
	return b
}

func TestRoundTripOfFieldsAndFrames(t *testing.T) {
	var stream []byte
	for i := range 3 {
		stream = append(stream, build(t, byte('A'+i), 1<<20, func(b []byte) []byte {
			b = frame.AppendUvarint(b, math.MaxUint64)
			b = frame.AppendVarint(b, -int64(i)-1)
			b = frame.AppendBool(b, i%2 == 0)
			b = frame.AppendString(b, "héllo")
			b = frame.AppendBytes(b, nil)
			return frame.AppendBytes(b, []byte{0, 1, 2})
		})...)
	}
	r := frame.NewReader(bytes.NewReader(stream), 1<<20)
	for i := range 3 {
		kind, body, err := r.Next()
		require.NoError(t, err)
		assert.Equal(t, byte('A'+i), kind)
		f := frame.NewFields(body)
		assert.Equal(t, uint64(math.MaxUint64), f.Uvarint())
		assert.Equal(t, -int64(i)-1, f.Varint())
		assert.Equal(t, i%2 == 0, f.Bool())
		assert.Equal(t, "héllo", f.Str())
		assert.Nil(t, f.Bytes(), "an empty field is nil")
		assert.Equal(t, []byte{0, 1, 2}, f.Bytes())
		require.NoError(t, f.Finish())
	}
	_, _, err := r.Next()
	assert.ErrorIs(t, err, io.EOF, "the end of the stream between frames is io.EOF")
}

func TestReaderRefusesBadFrames(t *testing.T) {
	huge := binary.BigEndian.AppendUint32(nil, 1<<30)
	for _, tc := range []struct {
		name   string
		stream []byte
		want   error
	}{
		{"EmptyStream", nil, io.EOF},
		{"HalfAHeader", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"ZeroLength", []byte{0, 0, 0, 0}, frame.ErrEmpty},
		{"OverTheLimit", append(huge, 'x'), frame.ErrTooLarge},
		{"TruncatedBody", []byte{0, 0, 0, 9, 'k', 1, 2}, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := frame.NewReader(bytes.NewReader(tc.stream), 1024).Next()
			require.ErrorIs(t, err, tc.want)
			var tle *frame.TooLargeError
			if errors.As(err, &tle) {
				assert.Equal(t, uint64(1<<30), tle.Size)
				assert.Equal(t, 1024, tle.Limit)
			}
		})
	}
}

func TestEndRefusesAFrameOverTheLimit(t *testing.T) {
	b := frame.Begin([]byte("prefix"), 'K')
	b = frame.AppendBytes(b, make([]byte, 100))
	before := len(b)
	got, err := frame.End(b, len("prefix"), 50)
	require.ErrorIs(t, err, frame.ErrTooLarge)
	assert.Len(t, got, before, "the buffer is given back unchanged")

	// A limit below MinLimit counts as MinLimit.
	_, err = frame.End(frame.Begin(nil, 'K'), 0, 0)
	require.NoError(t, err)
	assert.Equal(t, frame.MinLimit, frame.NewReader(nil, 1).Limit())
}

func TestFieldsRefuseMalformedBodies(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
		read func(f *frame.Fields)
	}{
		{"NoVarint", nil, func(f *frame.Fields) { f.Uvarint() }},
		{"OverflowingVarint", bytes.Repeat([]byte{0xff}, 11), func(f *frame.Fields) { f.Varint() }},
		{"LongerThanNeeded", []byte{0x92, 0x00}, func(f *frame.Fields) { f.Uvarint() }},
		{"BadBool", []byte{2}, func(f *frame.Fields) { f.Bool() }},
		{"LengthPastTheEnd", []byte{5, 'a'}, func(f *frame.Fields) { f.Bytes() }},
		{"LeftOver", []byte{1, 'a', 'b'}, func(f *frame.Fields) { f.Str() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := frame.NewFields(tc.body)
			tc.read(f)
			require.ErrorIs(t, f.Finish(), frame.ErrMalformed)
			// After an error everything reads as zero.
			assert.Zero(t, f.Uvarint())
			assert.Empty(t, f.Str())
			assert.False(t, f.Bool())
		})
	}
}

// FuzzReader feeds arbitrary bytes to a Reader: it must never panic or
// allocate past its limit, and every frame it accepts must encode back to
// the same bytes.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 'H'})
	f.Add([]byte{0, 0, 0, 3, 'C', 1, 'x', 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		const limit = 256
		r := frame.NewReader(bytes.NewReader(stream), limit)
		var again []byte
		for {
			kind, body, err := r.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					require.True(t, bytes.Equal(stream, again), "accepted frames must re-encode to the stream")
				}
				return
			}
			require.LessOrEqual(t, len(body)+1, limit)
			start := len(again)
			again = frame.Begin(again, kind)
			again = append(again, body...)
			again, err = frame.End(again, start, limit)
			require.NoError(t, err)
		}
	})
}

// FuzzFields decodes arbitrary bodies: no panic, and a body that decodes
// without error re-encodes to the same bytes.
func FuzzFields(f *testing.F) {
	f.Add([]byte{3, 'a', 'b', 'c', 1, 0x80, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, body []byte) {
		d := frame.NewFields(body)
		s := d.Str()
		b := d.Bool()
		v := d.Varint()
		if d.Finish() != nil {
			return
		}
		var again []byte
		again = frame.AppendString(again, s)
		again = frame.AppendBool(again, b)
		again = frame.AppendVarint(again, v)
		require.True(t, bytes.Equal(body, again), "%x re-encoded as %x", body, again)
	})
}
