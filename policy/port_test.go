package policy

import (
	"errors"
	"strconv"
	"testing"
)

func TestParsePort(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint16 // 0: refused
	}{
		{"1", 1}, {"80", 80}, {"443", 443}, {"65535", 65535},
		{"0443", 443}, {"00080", 80}, {"000443", 443}, // leading zeros are only digits
		{"", 0}, {"0", 0}, {"00", 0}, {"65536", 0}, {"99999", 0}, {"4294967297", 0},
		{"+1", 0}, {"-1", 0}, {" 80", 0}, {"80 ", 0}, {"8_0", 0}, {"0x50", 0}, {"https", 0}, {"٨٠", 0},
	} {
		got, err := ParsePort(c.in)
		if c.want == 0 {
			var pe *PortError
			if err == nil || !errors.As(err, &pe) || pe.Text != c.in {
				t.Errorf("ParsePort(%q) = %d, %v; want a *PortError for %q", c.in, got, err, c.in)
			}
			if want := `invalid port ` + strconv.Quote(c.in); err != nil && err.Error() != want {
				t.Errorf("ParsePort(%q) error %q, want %q", c.in, err, want)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParsePort(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

// FuzzParsePort checks that an accepted port is 1-65535 and is what its
// digits say, and that a refused one is a *PortError naming the input.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"1", "65535", "0", "65536", "", "+1", "-1", "0080", " 1", "1e3", "٨"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			var pe *PortError
			if !errors.As(err, &pe) || pe.Text != s || p != 0 {
				t.Fatalf("ParsePort(%q) = %d, %v", s, p, err)
			}
			return
		}
		if p == 0 || !allDigits(s) {
			t.Fatalf("ParsePort(%q) = %d, accepted", s, p)
		}
		if n, err := strconv.Atoi(s); err != nil || n != int(p) {
			t.Fatalf("ParsePort(%q) = %d, but the digits say %d (%v)", s, p, n, err)
		}
	})
}
