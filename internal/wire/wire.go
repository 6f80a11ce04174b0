// Package wire is the compact binary encoding of the messages one sandgate
// process sends to another started from the same binary (the sandbox
// init's configuration and file system plan): no field names, no
// reflection, so that decoding costs the first message no more than the
// next. Both ends are the same build, so there is no versioning: a
// message is a fixed sequence of values, written by an Encoder and read
// back in the same order by a Decoder.
//
// Integers are varints, strings and byte slices a length and their bytes,
// lists a count and their elements. The Decoder checks every length
// against what is left of the message (a malformed or hostile message
// cannot make it allocate more than the message's own size, nor panic):
// its first error sticks, every later read returns a zero value, and Err
// (or Finish, which also refuses trailing bytes) reports it.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Encoder appends values to a message.
type Encoder struct {
	buf []byte
}

// NewEncoder returns an Encoder whose buffer starts with room for size
// bytes.
func NewEncoder(size int) *Encoder {
	return &Encoder{buf: make([]byte, 0, size)}
}

// Bytes returns the message encoded so far.
func (e *Encoder) Bytes() []byte { return e.buf }

// Uint appends v.
func (e *Encoder) Uint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

// Int appends v.
func (e *Encoder) Int(v int) { e.buf = binary.AppendVarint(e.buf, int64(v)) }

// Bool appends b as one byte.
func (e *Encoder) Bool(b bool) {
	if b {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// String appends s.
func (e *Encoder) String(s string) {
	e.Uint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// Blob appends b.
func (e *Encoder) Blob(b []byte) {
	e.Uint(uint64(len(b)))
	e.buf = append(e.buf, b...)
}

// Strings appends the list ss.
func (e *Encoder) Strings(ss []string) {
	e.Uint(uint64(len(ss)))
	for _, s := range ss {
		e.String(s)
	}
}

// ErrShort is the Decoder's error when the message ends before a value.
var ErrShort = errors.New("the message ends in the middle of a value")

// Decoder reads values from a message, in the order they were encoded.
type Decoder struct {
	buf []byte
	err error
}

// NewDecoder returns a Decoder of msg. The strings it returns are copies;
// the byte slices (Blob) share msg's memory.
func NewDecoder(msg []byte) *Decoder { return &Decoder{buf: msg} }

// Err returns the first error of the decoding (nil: none so far).
func (d *Decoder) Err() error { return d.err }

// Fail records err as the decoding's error, unless there is one already.
// A caller uses it for values that decode but do not make sense.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = err
		d.buf = nil
	}
}

// Finish returns the decoding's error, or an error when bytes are left
// after the last value.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.buf) > 0 {
		d.Fail(fmt.Errorf("%d bytes left after the message's last value", len(d.buf)))
	}
	return d.err
}

// Uint reads an unsigned integer.
func (d *Decoder) Uint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.failVarint(n)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// Int reads a signed integer (it must fit an int).
func (d *Decoder) Int() int {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.failVarint(n)
		return 0
	}
	if v < math.MinInt || v > math.MaxInt {
		d.Fail(fmt.Errorf("the integer %d is out of range", v))
		return 0
	}
	d.buf = d.buf[n:]
	return int(v)
}

// Uint32 reads an unsigned integer that must fit 32 bits.
func (d *Decoder) Uint32() uint32 {
	v := d.Uint()
	if v > math.MaxUint32 {
		d.Fail(fmt.Errorf("the integer %d is out of range", v))
		return 0
	}
	return uint32(v)
}

// failVarint records the error of a varint read that returned n <= 0.
func (d *Decoder) failVarint(n int) {
	if n == 0 {
		d.Fail(ErrShort)
	} else {
		d.Fail(errors.New("an integer overflows 64 bits"))
	}
}

// Bool reads a bool (one byte, 0 or 1).
func (d *Decoder) Bool() bool {
	if len(d.buf) == 0 {
		d.Fail(ErrShort)
		return false
	}
	b := d.buf[0]
	if b > 1 {
		d.Fail(fmt.Errorf("the byte %#x is not a bool", b))
		return false
	}
	d.buf = d.buf[1:]
	return b == 1
}

// Count reads the length of a list whose elements take at least one byte
// each: at most what is left of the message, and at most max.
func (d *Decoder) Count(max int) int {
	n := d.Uint()
	if n > uint64(len(d.buf)) || n > uint64(max) {
		d.Fail(fmt.Errorf("a list of %d elements does not fit the message (%d bytes left, at most %d elements)", n, len(d.buf), max))
		return 0
	}
	return int(n)
}

// raw reads a length and that many bytes.
func (d *Decoder) raw() []byte {
	n := d.Uint()
	if n > uint64(len(d.buf)) {
		d.Fail(fmt.Errorf("a value of %d bytes does not fit the message (%d bytes left)", n, len(d.buf)))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

// String reads a string.
func (d *Decoder) String() string { return string(d.raw()) }

// Blob reads a byte slice (nil when empty), sharing the message's memory.
func (d *Decoder) Blob() []byte {
	b := d.raw()
	if len(b) == 0 {
		return nil
	}
	return b
}

// Strings reads a list of strings (nil when empty).
func (d *Decoder) Strings() []string {
	n := d.Count(math.MaxInt)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.String()
	}
	if d.err != nil {
		return nil
	}
	return ss
}
