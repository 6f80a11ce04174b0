package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		host     string
		port     uint16
		wantHost string
		wantAddr string // "" for names
		str      string
	}{
		{"example.com", 443, "example.com", "", "example.com:443"},
		{"Example.COM.", 443, "example.com", "", "example.com:443"},
		{"bücher.example", 80, "xn--bcher-kva.example", "", "xn--bcher-kva.example:80"},
		{"203.0.113.10", 80, "203.0.113.10", "203.0.113.10", "203.0.113.10:80"},
		{"2001:db8::1", 443, "2001:db8::1", "2001:db8::1", "[2001:db8::1]:443"},
		{"[2001:db8::1]", 443, "2001:db8::1", "2001:db8::1", "[2001:db8::1]:443"},
		{"[2001:DB8:0::1]", 443, "2001:db8::1", "2001:db8::1", "[2001:db8::1]:443"},
		{"[::ffff:203.0.113.10]", 443, "203.0.113.10", "203.0.113.10", "203.0.113.10:443"},
		{"::ffff:203.0.113.10", 443, "203.0.113.10", "203.0.113.10", "203.0.113.10:443"},
		{"[::ffff:127.0.0.1]", 80, "127.0.0.1", "127.0.0.1", "127.0.0.1:80"},
		{"::ffff:a9fe:a9fe", 80, "169.254.169.254", "169.254.169.254", "169.254.169.254:80"},
		{"64:ff9b::7f00:1", 80, "64:ff9b::7f00:1", "64:ff9b::7f00:1", "[64:ff9b::7f00:1]:80"},
		{"localhost", 65535, "localhost", "", "localhost:65535"},
	}
	for _, tc := range tests {
		got, err := ParseTarget(tc.host, tc.port)
		if err != nil {
			t.Errorf("ParseTarget(%q, %d): %v", tc.host, tc.port, err)
			continue
		}
		var want netip.Addr
		if tc.wantAddr != "" {
			want = netip.MustParseAddr(tc.wantAddr)
		}
		if got.Host != tc.wantHost || got.Addr != want || got.Port != tc.port || got.IsIP() != want.IsValid() {
			t.Errorf("ParseTarget(%q, %d) = %#v, want host %q addr %v", tc.host, tc.port, got, tc.wantHost, want)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseTarget(%q, %d).String() = %q, want %q", tc.host, tc.port, s, tc.str)
		}
	}
}

func TestParseTargetRefuses(t *testing.T) {
	tests := []struct {
		host    string
		port    uint16
		numeric bool
	}{
		{host: "example.com", port: 0},
		{host: "", port: 443},
		{host: "fe80::1%eth0", port: 443},
		{host: "[fe80::1%25eth0]", port: 443},
		{host: "[fe80::1%eth0]", port: 443},
		{host: "[203.0.113.10]", port: 443},
		{host: "[2001:db8::1", port: 443},
		{host: "[2001:db8::1]:443", port: 443},
		{host: "example.com:443", port: 443},
		{host: "2001:db8::g", port: 443},
		{host: "exa mple.com", port: 443},
		{host: "evil.test\r\nX-Injected: 1", port: 443},
		{host: "a..b", port: 443},
		{host: "*.example.com", port: 443},
		{host: "2130706433", port: 80, numeric: true},
		{host: "0x7f.1", port: 80, numeric: true},
		{host: "127.1", port: 80, numeric: true},
		{host: "0177.0.0.1", port: 80, numeric: true},
		{host: "127.0.0.1.", port: 80, numeric: true},
		{host: "203.0.113.010", port: 80, numeric: true},
		{host: "0x7f000001", port: 80, numeric: true},
	}
	for _, tc := range tests {
		got, err := ParseTarget(tc.host, tc.port)
		if err == nil {
			t.Errorf("ParseTarget(%q, %d) = %#v, want an error", tc.host, tc.port, got)
			continue
		}
		if got != (Target{}) {
			t.Errorf("ParseTarget(%q, %d) returned %#v with its error", tc.host, tc.port, got)
		}
		if errors.Is(err, ErrNumericName) != tc.numeric {
			t.Errorf("ParseTarget(%q, %d): %v; want numeric %v", tc.host, tc.port, err, tc.numeric)
		}
		if !strings.HasPrefix(err.Error(), "invalid target ") {
			t.Errorf("ParseTarget(%q, %d): error %q does not name the target", tc.host, tc.port, err)
		}
		d := InvalidTargetDecision(tc.host, tc.port, err)
		wantReason := ReasonInvalidHost
		if tc.numeric {
			wantReason = ReasonNumericName
		}
		if d.Allow || d.Block != BlockAddress || d.Reason != wantReason || d.Text == "" || strings.ContainsAny(d.Text, "\r\n") {
			t.Errorf("InvalidTargetDecision(%q, %d) = %#v, want a one-line %s refusal", tc.host, tc.port, d, wantReason)
		}
	}
}
