package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	"example.com", "Example.COM.", "*.example.com", "**.example.com:443", "bücher.example",
	"xn--bcher-kva.example", "*.com", "**.co.uk", "*", "**", "127.1", "0x7f.1", "2130706433",
	"203.0.113.10", "203.0.113.10:80", "198.51.100.0/24:443", "2001:db8::1", "[2001:db8::1]:443",
	"[2001:db8::/32]:443", "::ffff:203.0.113.10", "[::ffff:127.0.0.1]", "fe80::1%eth0",
	"a..b", "example.com:0", "example.com:65536", "a_b.example", "\uff21.example", "example\u3002com",
	"[", "]", ":", "", "xn--", "-a.b", "64:ff9b::7f00:1",
	"GET,HEAD api.example.com/repos/acme/**", "* host.example/path", "POST host.example:8443/x/*",
	"GET 203.0.113.10/x", "GET [2001:db8::1]:443/x", "http://example.com/", "https://example.com/x",
	"example.com/a/%2e%2e/b", "GET example.com/*.git/info/refs", "GET  example.com", "get example.com",
}

func FuzzNormalizeName(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeName(s)
		if err != nil {
			if n != "" {
				t.Fatalf("NormalizeName(%q) = %q with error %v", s, n, err)
			}
			return
		}
		if n == "" || len(n) > 253 || strings.HasSuffix(n, ".") {
			t.Fatalf("NormalizeName(%q) = %q: bad shape", s, n)
		}
		for i := 0; i < len(n); i++ {
			c := n[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
				t.Fatalf("NormalizeName(%q) = %q: byte %q", s, n, c)
			}
		}
		again, err := NormalizeName(n)
		if err != nil || again != n {
			t.Fatalf("NormalizeName(%q) = %q, but NormalizeName(%q) = %q, %v", s, n, n, again, err)
		}
		if _, err := netip.ParseAddr(n); err == nil {
			t.Fatalf("NormalizeName(%q) = %q, an IP address", s, n)
		}
		tg, err := ParseTarget(n, 443)
		if err != nil || tg.Host != n || tg.IsIP() {
			t.Fatalf("ParseTarget(%q) = %#v, %v; want the same name", n, tg, err)
		}
	})
}

func FuzzParseEntry(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEntry(s)
		if err != nil {
			if utf8.ValidString(s) && !strings.Contains(err.Error(), s) && !strings.ContainsAny(s, "\"\\") && strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r >= 0x7f }) < 0 {
				t.Fatalf("ParseEntry(%q): error %q does not name the entry", s, err)
			}
			return
		}
		if e.Raw != s {
			t.Fatalf("ParseEntry(%q).Raw = %q", s, e.Raw)
		}
		switch e.Kind {
		case KindExact, KindSubdomains, KindApexAndSubdomains:
			if n, err := NormalizeName(e.Name); err != nil || n != e.Name || e.Prefix.IsValid() {
				t.Fatalf("ParseEntry(%q) = %#v: name not normalised (%q, %v)", s, e, n, err)
			}
		case KindPrefix:
			if !e.Prefix.IsValid() || e.Prefix.Masked() != e.Prefix || e.Prefix.Addr().Is4In6() || e.Name != "" {
				t.Fatalf("ParseEntry(%q) = %#v: bad prefix", s, e)
			}
		default:
			t.Fatalf("ParseEntry(%q) = %#v: bad kind", s, e)
		}
		again, err := ParseEntry(e.String())
		if err != nil || again.Kind != e.Kind || again.Name != e.Name || again.Prefix != e.Prefix || again.Port != e.Port ||
			strings.Join(again.Methods, ",") != strings.Join(e.Methods, ",") || again.Path != e.Path {
			t.Fatalf("ParseEntry(%q) = %#v; its String %q parses to %#v, %v", s, e, e.String(), again, err)
		}
	})
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, uint16(443))
	}
	f.Add("example.com", uint16(0))
	p := mustPolicy(Config{
		Allow: []string{"**.example.com", "0.0.0.0/0", "::/0", "127.0.0.1"},
		Deny:  []string{"bad.example.com"},
	})
	f.Fuzz(func(t *testing.T, host string, port uint16) {
		tg, err := ParseTarget(host, port)
		if err != nil {
			if tg != (Target{}) {
				t.Fatalf("ParseTarget(%q, %d) = %#v with error", host, port, tg)
			}
			d := InvalidTargetDecision(host, port, err)
			if d.Allow || d.Block != BlockAddress || strings.ContainsAny(d.Text, "\r\n") {
				t.Fatalf("InvalidTargetDecision(%q) = %+v", host, d)
			}
			if errors.Is(err, ErrNumericName) != (d.Reason == ReasonNumericName) {
				t.Fatalf("InvalidTargetDecision(%q, %v) = %+v", host, err, d)
			}
			return
		}
		if tg.Port != port || port == 0 {
			t.Fatalf("ParseTarget(%q, %d) = %#v: port", host, port, tg)
		}
		if tg.IsIP() {
			if tg.Addr.Zone() != "" || tg.Addr.Is4In6() || tg.Host != tg.Addr.String() {
				t.Fatalf("ParseTarget(%q) = %#v: literal not canonical", host, tg)
			}
		} else if n, err := NormalizeName(tg.Host); err != nil || n != tg.Host {
			t.Fatalf("ParseTarget(%q) = %#v: name not normalised", host, tg)
		}
		again, err := ParseTarget(tg.Host, port)
		if err != nil || again != tg {
			t.Fatalf("ParseTarget(%q) = %#v, but ParseTarget(%q) = %#v, %v", host, tg, tg.Host, again, err)
		}
		d := p.CheckTarget(tg)
		if d.Text == "" || strings.ContainsAny(d.Text, "\r\n") {
			t.Fatalf("CheckTarget(%#v) text %q", tg, d.Text)
		}
		if d.Allow && tg.IsIP() && Classify(tg.Addr) != "" && tg.Addr != netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("CheckTarget(%#v) allowed a %s address through 0.0.0.0/0 or ::/0", tg, Classify(tg.Addr))
		}
		if d.Allow && !tg.IsIP() && tg.Host == "bad.example.com" {
			t.Fatalf("CheckTarget allowed a denied name: %+v", d)
		}
	})
}

func FuzzCheckRequest(f *testing.F) {
	for _, s := range []string{"/repos/acme/x", "/repos/acme/../../admin", "/repos/acme/%2e%2e/x", "/repos/acme/x%2fy",
		"/repos/acme", "//repos/acme", "/repos/acme/..;/x", "/a?service=git-upload-pack", "", "*"} {
		f.Add("GET", s)
	}
	p := mustPolicy(Config{Allow: []string{"GET,HEAD api.example.com/repos/acme/**"}, ReadOnlyGit: []string{"git.example/acme/*"}})
	f.Fuzz(func(t *testing.T, method, path string) {
		for _, host := range []string{"api.example.com", "git.example"} {
			d := p.CheckRequest(host, 443, method, path)
			if d.Text == "" || strings.ContainsAny(d.Text, "\r\n") && !strings.ContainsAny(method+path, "\r\n") {
				t.Fatalf("CheckRequest(%q, %q) text %q", method, path, d.Text)
			}
			if !d.Allow {
				if d.Reason != ReasonBlockedByMethod && d.Reason != ReasonBlockedByPath {
					t.Fatalf("CheckRequest(%q, %q) = %+v: wrong refusal", method, path, d)
				}
				continue
			}
			segs, _, bad := cleanPath(path)
			if bad != "" {
				t.Fatalf("CheckRequest(%q, %q) allowed a refused path (%s)", method, path, bad)
			}
			for _, s := range segs {
				if b, _, _ := strings.Cut(s, ";"); b == ".." || b == "." || strings.ContainsAny(s, "\\") {
					t.Fatalf("CheckRequest(%q, %q) allowed a dot segment", method, path)
				}
			}
			p2, _, _ := strings.Cut(path, "?")
			if host == "api.example.com" && !strings.HasPrefix(p2, "/repos/") {
				t.Fatalf("CheckRequest(%q, %q) allowed outside /repos/", method, path)
			}
			if host == "git.example" && (strings.Contains(path, "receive-pack") || (method != "GET" && method != "POST")) {
				t.Fatalf("CheckRequest(%q, %q) allowed a push", method, path)
			}
		}
	})
}
