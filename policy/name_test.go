package policy

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestNormalizeName(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// 3 labels of 63 + 1 of 61 = 250 bytes + 3 dots = 253.
	name253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 61)
	tests := []struct {
		in, want string
	}{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"example.com.", "example.com"},
		{"EXAMPLE.COM.", "example.com"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"BÜCHER.example.", "xn--bcher-kva.example"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"XN--BCHER-KVA.example", "xn--bcher-kva.example"},
		{"ß.example", "xn--zca.example"},    // non-transitional: not "ss"
		{"ｅｘａｍｐｌｅ.com", "example.com"},      // full-width letters map to ASCII
		{"example\u3002com", "example.com"}, // ideographic full stop is a dot
		{"a_b.example", "a_b.example"},
		{"_dmarc.example.com", "_dmarc.example.com"},
		{"r3---sn-abc.googlevideo.com", "r3---sn-abc.googlevideo.com"},
		{"localhost", "localhost"},
		{"123.example", "123.example"},
		{"1e100.net", "1e100.net"},
		{"example.0x7g", "example.0x7g"},
		{"a-b.example", "a-b.example"},
		{label63 + ".example", label63 + ".example"},
		{name253, name253},
		{name253 + ".", name253},
	}
	for _, tc := range tests {
		got, err := NormalizeName(tc.in)
		if err != nil {
			t.Errorf("NormalizeName(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if again, err := NormalizeName(got); err != nil || again != got {
			t.Errorf("NormalizeName(%q) = %q, %v; not idempotent", got, again, err)
		}
	}
}

func TestNormalizeNameRefuses(t *testing.T) {
	label64 := strings.Repeat("a", 64)
	name254 := strings.Repeat("a", 63) + "." + strings.Repeat("a", 63) + "." + strings.Repeat("a", 63) + "." + strings.Repeat("b", 62)
	tests := []struct {
		in      string
		numeric bool
	}{
		{in: ""},
		{in: "."},
		{in: ".."},
		{in: "example.com.."},
		{in: ".example.com"},
		{in: "a..b"},
		{in: "exa mple.com"},
		{in: " example.com"},
		{in: "exa\tmple.com"},
		{in: "exa\x00mple.com"},
		{in: "example.com\n"},
		{in: "exa\x7fmple.com"},
		{in: "fe80::1%eth0"},
		{in: "example.com%2e"},
		{in: "a:b"},
		{in: "a/b.example"},
		{in: "a\uff0fb.example"}, // full-width solidus maps to '/'
		{in: "a@b.example"},
		{in: "*.example.com"},
		{in: "\uff0a.example.com"}, // full-width asterisk maps to '*'
		{in: "-a.example"},
		{in: "a-.example"},
		{in: label64 + ".example"},
		{in: name254},
		{in: strings.Repeat("a.", 600)},
		{in: "xn--zz.example"},  // undecodable punycode
		{in: "xn--abc.example"}, // decodes to control characters
		{in: "xn--.example"},
		{in: "a\u200db.example"}, // ZWJ outside its context
		{in: "example.com\u3002"},
		{in: "2130706433", numeric: true},
		{in: "0x7f.1", numeric: true},
		{in: "0X7F.1", numeric: true},
		{in: "127.1", numeric: true},
		{in: "0177.0.0.1", numeric: true},
		{in: "127.0.0.1", numeric: true},
		{in: "127.0.0.1.", numeric: true},
		{in: "0x7f000001", numeric: true},
		{in: "example.0x", numeric: true},
		{in: "example.0xff", numeric: true},
		{in: "example.123", numeric: true},
		{in: "\uff11\uff12\uff17.1", numeric: true}, // full-width digits
	}
	for _, tc := range tests {
		got, err := NormalizeName(tc.in)
		if err == nil {
			t.Errorf("NormalizeName(%q) = %q, want an error", tc.in, got)
			continue
		}
		if got != "" {
			t.Errorf("NormalizeName(%q) returned %q with its error", tc.in, got)
		}
		if errors.Is(err, ErrNumericName) != tc.numeric {
			t.Errorf("NormalizeName(%q): error %v; numeric = %v, want %v", tc.in, err, !tc.numeric, tc.numeric)
		}
		if len(tc.in) < 100 && !strings.Contains(err.Error(), strings.Trim(strconv.Quote(tc.in), `"`)) {
			t.Errorf("NormalizeName(%q): error %q does not name the input", tc.in, err)
		}
	}
}
