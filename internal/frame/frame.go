// Package frame reads and writes length-prefixed frames and the fields
// inside them: the wire format between the subprocess executor and its
// worker processes. Pick it for a byte stream between two processes that
// trust each other's code but not each other's health: every length is
// checked against a limit before anything is allocated, and every malformed
// input is an error, never a panic or a hang.
//
// A frame is a 4-byte big-endian length n followed by n bytes: one kind
// byte and the body. A body is a sequence of fields appended with the
// Append functions and read back in the same order with a Fields decoder.
package frame

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// HeaderSize is the size of a frame's length prefix.
const HeaderSize = 4

// MinLimit is the smallest frame limit a Reader or End accepts: a limit
// below it is raised to it.
const MinLimit = 16

// ErrTooLarge matches every *TooLargeError.
var ErrTooLarge = errors.New("frame: frame over the size limit")

// ErrEmpty is returned for a frame whose length is zero: every frame holds
// at least its kind byte.
var ErrEmpty = errors.New("frame: empty frame")

// TooLargeError reports a frame whose length is over the limit. It is
// returned before the frame's bytes are read or allocated.
type TooLargeError struct {
	Size  uint64 // the length the frame claims (or would have)
	Limit int
}

// Error returns the message.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("frame: frame of %d bytes over the limit of %d bytes", e.Size, e.Limit)
}

// Is reports whether target is ErrTooLarge.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Reader reads frames from a byte stream. It is not safe for concurrent
// use.
type Reader struct {
	r     *bufio.Reader
	limit int
	buf   []byte
}

// NewReader returns a Reader of frames of at most limit bytes (kind byte
// included) from r. A limit below MinLimit is raised to MinLimit.
func NewReader(r io.Reader, limit int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), limit: max(limit, MinLimit)}
}

// Limit returns the largest frame the Reader accepts.
func (r *Reader) Limit() int { return r.limit }

// Next reads the next frame and returns its kind and body. The body is
// valid until the next call of Next. At the end of the stream, between two
// frames, it returns io.EOF; a stream that ends inside a frame gives
// io.ErrUnexpectedEOF; a frame over the limit gives a *TooLargeError and an
// empty one ErrEmpty, after which the stream is out of step and must be
// abandoned.
func (r *Reader) Next() (kind byte, body []byte, err error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return 0, nil, err // io.EOF between frames, io.ErrUnexpectedEOF inside a header
	}
	n := binary.BigEndian.Uint32(hdr[:])
	switch {
	case n == 0:
		return 0, nil, ErrEmpty
	case uint64(n) > uint64(r.limit):
		return 0, nil, &TooLargeError{Size: uint64(n), Limit: r.limit}
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return p[0], p[1:], nil
}

// Begin starts a frame of the given kind at the end of b and returns the
// extended slice; append the body's fields to it and finish with End.
func Begin(b []byte, kind byte) []byte {
	return append(b, 0, 0, 0, 0, kind)
}

// End finishes the frame that starts at offset start of b (where Begin was
// called) by writing its length. A frame over limit (a limit below
// MinLimit counts as MinLimit) is a *TooLargeError and b is returned
// unchanged, so the caller can send something else instead.
func End(b []byte, start, limit int) ([]byte, error) {
	n := len(b) - start - HeaderSize
	if limit = max(limit, MinLimit); n > limit || n > math.MaxUint32 {
		return b, &TooLargeError{Size: uint64(n), Limit: limit}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}

// AppendUvarint appends v as an unsigned varint.
func AppendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendVarint appends v as a signed varint.
func AppendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

// AppendBool appends v as one byte, 0 or 1.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendBytes appends p prefixed with its length.
func AppendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// AppendString appends s prefixed with its length.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// ErrMalformed matches every error of a Fields decoder: a body that ends
// inside a field, a varint that overflows or is not in its shortest form, a
// length past the end, a boolean other than 0 or 1, or bytes left over
// after the last field. Every body thus has one encoding.
var ErrMalformed = errors.New("frame: malformed body")

// Fields decodes the fields of a frame body in the order they were
// appended. After the first error every method returns a zero value and
// Err reports that error; check Err (or Finish) once at the end. The zero
// Fields decodes an empty body.
type Fields struct {
	b   []byte
	err error
}

// NewFields returns a decoder of body. Byte fields it returns alias body.
func NewFields(body []byte) *Fields { return &Fields{b: body} }

func (f *Fields) fail(what string) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	f.b = nil
}

// Uvarint decodes an unsigned varint.
func (f *Fields) Uvarint() uint64 {
	if f.err != nil {
		return 0
	}
	v, n := binary.Uvarint(f.b)
	if n <= 0 || n > 1 && f.b[n-1] == 0 {
		f.fail("bad unsigned varint")
		return 0
	}
	f.b = f.b[n:]
	return v
}

// Varint decodes a signed varint.
func (f *Fields) Varint() int64 {
	if f.err != nil {
		return 0
	}
	v, n := binary.Varint(f.b)
	if n <= 0 || n > 1 && f.b[n-1] == 0 {
		f.fail("bad varint")
		return 0
	}
	f.b = f.b[n:]
	return v
}

// Bool decodes a boolean.
func (f *Fields) Bool() bool {
	if f.err != nil {
		return false
	}
	if len(f.b) == 0 || f.b[0] > 1 {
		f.fail("bad boolean")
		return false
	}
	v := f.b[0] == 1
	f.b = f.b[1:]
	return v
}

// Bytes decodes a length-prefixed byte field. The result aliases the body;
// an empty field is a nil slice.
func (f *Fields) Bytes() []byte {
	n := f.Uvarint()
	if f.err != nil {
		return nil
	}
	if n > uint64(len(f.b)) {
		f.fail("length past the end")
		return nil
	}
	if n == 0 {
		return nil
	}
	p := f.b[:n:n]
	f.b = f.b[n:]
	return p
}

// Str decodes a length-prefixed string field (a copy).
func (f *Fields) Str() string { return string(f.Bytes()) }

// Err returns the first decoding error, or nil.
func (f *Fields) Err() error { return f.err }

// Finish returns the first decoding error, or an error if bytes are left
// after the last field, or nil.
func (f *Fields) Finish() error {
	if f.err == nil && len(f.b) > 0 {
		f.fail(fmt.Sprintf("%d bytes after the last field", len(f.b)))
	}
	return f.err
}
