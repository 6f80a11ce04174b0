package wire

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	e := NewEncoder(0)
	e.Uint(0)
	e.Uint(math.MaxUint64)
	e.Int(math.MinInt)
	e.Int(-1)
	e.Int(math.MaxInt)
	e.Uint(math.MaxUint32)
	e.Bool(true)
	e.Bool(false)
	e.String("")
	e.String("päth\x00with nul")
	e.Blob([]byte{0, 1, 2})
	e.Blob(nil)
	e.Strings([]string{"a", "", "c"})
	e.Strings(nil)
	d := NewDecoder(e.Bytes())
	got := []any{d.Uint(), d.Uint(), d.Int(), d.Int(), d.Int(), d.Uint32(), d.Bool(), d.Bool(),
		d.String(), d.String(), d.Blob(), d.Blob(), d.Strings(), d.Strings()}
	want := []any{uint64(0), uint64(math.MaxUint64), math.MinInt, -1, math.MaxInt, uint32(math.MaxUint32), true, false,
		"", "päth\x00with nul", []byte{0, 1, 2}, []byte(nil), []string{"a", "", "c"}, []string(nil)}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %#v, want %#v", got, want)
	}
}

// TestMalformed: every malformed message is an error, the first one
// sticks, and reads after it return zero values.
func TestMalformed(t *testing.T) {
	for _, c := range []struct {
		name string
		msg  []byte
		read func(d *Decoder) any
		want string
	}{
		{"empty uint", nil, func(d *Decoder) any { return d.Uint() }, "ends in the middle"},
		{"cut varint", []byte{0x80}, func(d *Decoder) any { return d.Int() }, "ends in the middle"},
		{"varint over 64 bits", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, func(d *Decoder) any { return d.Uint() }, "overflows"},
		{"uint32 out of range", encoded(func(e *Encoder) { e.Uint(math.MaxUint32 + 1) }), func(d *Decoder) any { return d.Uint32() }, "out of range"},
		{"bool 2", []byte{2}, func(d *Decoder) any { return d.Bool() }, "not a bool"},
		{"empty bool", nil, func(d *Decoder) any { return d.Bool() }, "ends in the middle"},
		{"string longer than message", []byte{5, 'a', 'b'}, func(d *Decoder) any { return d.String() }, "does not fit"},
		{"huge string", encoded(func(e *Encoder) { e.Uint(math.MaxUint64) }), func(d *Decoder) any { return d.Blob() }, "does not fit"},
		{"count over the message", []byte{200, 1, 0}, func(d *Decoder) any { return d.Strings() }, "does not fit"},
		{"count over max", []byte{3, 0, 0, 0}, func(d *Decoder) any { return d.Count(2) }, "at most 2"},
		{"string list cut", []byte{2, 1, 'a', 3}, func(d *Decoder) any { return d.Strings() }, "does not fit"},
	} {
		d := NewDecoder(c.msg)
		v := c.read(d)
		if err := d.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one with %q", c.name, err, c.want)
		}
		if !reflect.ValueOf(v).IsZero() {
			t.Errorf("%s: read %#v, want the zero value", c.name, v)
		}
		first := d.Err()
		if d.String() != "" || d.Int() != 0 || d.Bool() || !errors.Is(d.Finish(), first) {
			t.Errorf("%s: the first error did not stick (%v)", c.name, d.Err())
		}
	}
}

func TestFinishRefusesTrailingBytes(t *testing.T) {
	d := NewDecoder([]byte{1, 7})
	if d.Uint() != 1 || d.Err() != nil {
		t.Fatal("the first value did not decode")
	}
	if err := d.Finish(); err == nil || !strings.Contains(err.Error(), "1 bytes left") {
		t.Errorf("Finish with a byte left = %v", err)
	}
	d = NewDecoder(nil)
	d.Fail(errors.New("no sense"))
	if err := d.Finish(); err == nil || err.Error() != "no sense" {
		t.Errorf("Finish after Fail = %v", err)
	}
}

// encoded returns the message f encodes.
func encoded(f func(e *Encoder)) []byte {
	e := NewEncoder(0)
	f(e)
	return e.Bytes()
}
