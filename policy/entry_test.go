package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseEntry(t *testing.T) {
	tests := []struct {
		in     string
		kind   Kind
		name   string
		prefix string
		port   uint16
		canon  string
	}{
		{in: "example.com", kind: KindExact, name: "example.com", canon: "example.com"},
		{in: "Example.COM.", kind: KindExact, name: "example.com", canon: "example.com"},
		{in: "example.com:443", kind: KindExact, name: "example.com", port: 443, canon: "example.com:443"},
		{in: "example.com:0443", kind: KindExact, name: "example.com", port: 443, canon: "example.com:443"},
		{in: "example.com:65535", kind: KindExact, name: "example.com", port: 65535, canon: "example.com:65535"},
		{in: "example.com:1", kind: KindExact, name: "example.com", port: 1, canon: "example.com:1"},
		{in: "*.example.com", kind: KindSubdomains, name: "example.com", canon: "*.example.com"},
		{in: "*.example.com:8443", kind: KindSubdomains, name: "example.com", port: 8443, canon: "*.example.com:8443"},
		{in: "**.example.com", kind: KindApexAndSubdomains, name: "example.com", canon: "**.example.com"},
		{in: "**.Example.com.:80", kind: KindApexAndSubdomains, name: "example.com", port: 80, canon: "**.example.com:80"},
		{in: "*.bücher.example", kind: KindSubdomains, name: "xn--bcher-kva.example", canon: "*.xn--bcher-kva.example"},
		{in: "*.example.co.uk", kind: KindSubdomains, name: "example.co.uk", canon: "*.example.co.uk"},
		{in: "*.githubusercontent.com", kind: KindSubdomains, name: "githubusercontent.com", canon: "*.githubusercontent.com"}, // PSL private section
		{in: "**.github.io", kind: KindApexAndSubdomains, name: "github.io", canon: "**.github.io"},                            // PSL private section
		{in: "*.www.ck", kind: KindSubdomains, name: "www.ck", canon: "*.www.ck"},                                              // PSL exception rule
		{in: "**.amazonaws.com", kind: KindApexAndSubdomains, name: "amazonaws.com", canon: "**.amazonaws.com"},
		{in: "com", kind: KindExact, name: "com", canon: "com"}, // exact public suffix is one name
		{in: "localhost:8080", kind: KindExact, name: "localhost", port: 8080, canon: "localhost:8080"},
		{in: "203.0.113.10", kind: KindPrefix, prefix: "203.0.113.10/32", canon: "203.0.113.10"},
		{in: "203.0.113.10:443", kind: KindPrefix, prefix: "203.0.113.10/32", port: 443, canon: "203.0.113.10:443"},
		{in: "198.51.100.0/24", kind: KindPrefix, prefix: "198.51.100.0/24", canon: "198.51.100.0/24"},
		{in: "198.51.100.0/24:443", kind: KindPrefix, prefix: "198.51.100.0/24", port: 443, canon: "198.51.100.0/24:443"},
		{in: "0.0.0.0/0", kind: KindPrefix, prefix: "0.0.0.0/0", canon: "0.0.0.0/0"},
		{in: "2001:db8::1", kind: KindPrefix, prefix: "2001:db8::1/128", canon: "2001:db8::1"},
		{in: "2001:DB8::1", kind: KindPrefix, prefix: "2001:db8::1/128", canon: "2001:db8::1"},
		{in: "[2001:db8::1]", kind: KindPrefix, prefix: "2001:db8::1/128", canon: "2001:db8::1"},
		{in: "[2001:db8::1]:443", kind: KindPrefix, prefix: "2001:db8::1/128", port: 443, canon: "[2001:db8::1]:443"},
		{in: "2001:db8::/32", kind: KindPrefix, prefix: "2001:db8::/32", canon: "2001:db8::/32"},
		{in: "[2001:db8::/32]:443", kind: KindPrefix, prefix: "2001:db8::/32", port: 443, canon: "[2001:db8::/32]:443"},
		{in: "::ffff:203.0.113.10", kind: KindPrefix, prefix: "203.0.113.10/32", canon: "203.0.113.10"},
		{in: "[::ffff:203.0.113.10]:80", kind: KindPrefix, prefix: "203.0.113.10/32", port: 80, canon: "203.0.113.10:80"},
		{in: "::ffff:198.51.100.0/120", kind: KindPrefix, prefix: "198.51.100.0/24", canon: "198.51.100.0/24"},
		{in: "2001:db8::1:443", kind: KindPrefix, prefix: "2001:db8::1:443/128", canon: "2001:db8::1:443"}, // an address, not a port
	}
	for _, tc := range tests {
		e, err := ParseEntry(tc.in)
		if err != nil {
			t.Errorf("ParseEntry(%q): %v", tc.in, err)
			continue
		}
		var want netip.Prefix
		if tc.prefix != "" {
			want = netip.MustParsePrefix(tc.prefix)
		}
		if e.Raw != tc.in || e.Kind != tc.kind || e.Name != tc.name || e.Prefix != want || e.Port != tc.port {
			t.Errorf("ParseEntry(%q) = %#v, want kind %v name %q prefix %v port %d", tc.in, e, tc.kind, tc.name, want, tc.port)
		}
		if got := e.String(); got != tc.canon {
			t.Errorf("ParseEntry(%q).String() = %q, want %q", tc.in, got, tc.canon)
		}
		again, err := ParseEntry(e.String())
		if err != nil || again.Kind != e.Kind || again.Name != e.Name || again.Prefix != e.Prefix || again.Port != e.Port {
			t.Errorf("ParseEntry(%q) = %#v, %v; does not round-trip %#v", e.String(), again, err, e)
		}
	}
}

func TestParseEntryRefuses(t *testing.T) {
	tests := []struct{ in, why string }{
		{"", "empty entry"},
		{"*", "bare wildcard"},
		{"**", "bare wildcard"},
		{"*:443", "bare wildcard"},
		{"*.com", "public suffix"},
		{"**.com", "public suffix"},
		{"*.co.uk", "public suffix"},
		{"**.co.uk", "public suffix"},
		{"*.test", "public suffix"}, // unlisted TLD: default rule
		{"*.рф", "public suffix"},
		{"*.foo.ck", "public suffix"}, // PSL wildcard rule *.ck
		{"*.COM.", "public suffix"},
		{"foo.*.example.com", "leftmost label"},
		{"*foo.example.com", "leftmost label"},
		{"f*.example.com", "leftmost label"},
		{"***.example.com", "leftmost label"},
		{"*.*.example.com", "leftmost label"},
		{"example.*", "leftmost label"},
		{".example.com", "empty label"},
		{"*..example.com", "empty label"},
		{"example.com:0", "port"},
		{"example.com:65536", "port"},
		{"example.com:99999", "port"},
		{"example.com:-1", "port"},
		{"example.com:+443", "port"},
		{"example.com:https", "port"},
		{"example.com:", "port"},
		{"example.com:443:443", "not an IP"},
		{":443", "empty host"},
		{"exa mple.com", "space"},
		{"evil.com\n", "control"},
		{"127.1", "numeric"},
		{"0x7f.1:80", "numeric"},
		{"2130706433", "numeric"},
		{"203.0.113.010", "numeric"},
		{"198.51.100.5/24", "did you mean 198.51.100.0/24"},
		{"198.51.100.0/33", "not an IP prefix"},
		{"example.com//24", "empty segment"},
		{"fe80::1%eth0", "zone"},
		{"[fe80::1%eth0]:443", "zone"},
		{"[203.0.113.10]:443", "brackets are only for IPv6"},
		{"[2001:db8::1]443", "after ']'"},
		{"[2001:db8::1]:0", "port"},
		{"[2001:db8::1", "without a closing"},
		{"[2001:db8::1]:", "port"},
		{"2001:db8::g", "not an IP address"},
		{"2001:db8::1:99999", "[address]:port"},
		{"[]:443", "not an IP address"},
	}
	for _, tc := range tests {
		e, err := ParseEntry(tc.in)
		if err == nil {
			t.Errorf("ParseEntry(%q) = %#v, want an error about %s", tc.in, e, tc.why)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, strconvQuoteEntry(tc.in)) {
			t.Errorf("ParseEntry(%q): error %q does not name the entry", tc.in, msg)
		}
		if !strings.Contains(msg, tc.why) {
			t.Errorf("ParseEntry(%q): error %q does not mention %q", tc.in, msg, tc.why)
		}
	}
}

// strconvQuoteEntry is how errors quote an entry.
func strconvQuoteEntry(s string) string { return "invalid entry " + quoteGo(s) }

func TestEntryMatches(t *testing.T) {
	tests := []struct {
		entry string
		host  string
		port  uint16
		want  bool
	}{
		{"example.com", "example.com", 443, true},
		{"example.com", "EXAMPLE.com.", 80, true},
		{"example.com", "www.example.com", 443, false},
		{"example.com", "evilexample.com", 443, false},
		{"example.com", "example.com.evil.test", 443, false},
		{"*.example.com", "www.example.com", 443, true},
		{"*.example.com", "a.b.example.com", 443, true},
		{"*.example.com", "example.com", 443, false},
		{"*.example.com", "evilexample.com", 443, false},
		{"*.example.com", "www.evilexample.com", 443, false},
		{"*.example.com", "example.com.evil.test", 443, false},
		{"**.example.com", "example.com", 443, true},
		{"**.example.com", "www.example.com", 443, true},
		{"**.example.com", "evilexample.com", 443, false},
		{"**.example.com", "xexample.com", 443, false},
		{"example.com:443", "example.com", 443, true},
		{"example.com:443", "example.com", 80, false},
		{"*.example.com:443", "www.example.com", 8443, false},
		{"bücher.example", "xn--bcher-kva.example", 443, true},
		{"xn--bcher-kva.example", "BÜCHER.example", 443, true},
		{"203.0.113.10", "203.0.113.10", 443, true},
		{"203.0.113.10", "[::ffff:203.0.113.10]", 443, true},
		{"203.0.113.10", "::ffff:cb00:710a", 443, true},
		{"203.0.113.10", "203.0.113.11", 443, false},
		{"203.0.113.10:443", "203.0.113.10", 80, false},
		{"198.51.100.0/24", "198.51.100.200", 443, true},
		{"198.51.100.0/24", "198.51.101.1", 443, false},
		{"2001:db8::/32", "2001:db8:1::5", 443, true},
		{"[2001:db8::/32]:443", "[2001:db8:1::5]", 443, true},
		{"[2001:db8::/32]:443", "[2001:db8:1::5]", 80, false},
		{"::/0", "203.0.113.10", 443, false}, // IPv6 prefixes hold no IPv4
		{"0.0.0.0/0", "2001:db8::1", 443, false},
		// Names never match literals and prefixes never match names.
		{"localhost", "127.0.0.1", 80, false},
		{"127.0.0.1", "localhost", 80, false},
	}
	for _, tc := range tests {
		e, err := ParseEntry(tc.entry)
		if err != nil {
			t.Fatalf("ParseEntry(%q): %v", tc.entry, err)
		}
		tg := mustTarget(tc.host, tc.port)
		if got := e.Matches(tg); got != tc.want {
			t.Errorf("entry %q matches %v = %v, want %v", tc.entry, tg, got, tc.want)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindExact: "exact", KindSubdomains: "subdomains",
		KindApexAndSubdomains: "apex-and-subdomains", KindPrefix: "prefix", 0: "Kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
