package main

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseCheckTarget checks the TARGET of `sandgate check`: a target it
// accepts has a host and a port of 1-65535, and HOST:PORT written from the
// result reads back the same.
func FuzzParseCheckTarget(f *testing.F) {
	for _, s := range []string{
		"https://example.com/x", "http://example.com", "wss://example.com:8443/socket", "ssh://git@example.com/repo",
		"http://[2001:db8::1]:8080/", "example.com", "example.com:22", "[2001:db8::1]:80", "[2001:db8::1]",
		"gopher://example.com", "example.com:0", "example.com:70000", "http://", ":80", "::1", "[::1", "HTTPS://EXAMPLE.COM",
		"http://a:b@host:99999", "http://ex%61mple.com", "a://b://c", "[a]b]:1", "example.com:+80", "%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := parseCheckTarget(s)
		if err != nil {
			if host != "" || port != 0 {
				t.Fatalf("parseCheckTarget(%q) = %q, %d with error %v", s, host, port, err)
			}
			return
		}
		if host == "" || port == 0 {
			t.Fatalf("parseCheckTarget(%q) = %q, %d", s, host, port)
		}
		if !strings.Contains(s, "://") {
			if _, _, serr := net.SplitHostPort(s); serr != nil && port != 443 {
				t.Fatalf("parseCheckTarget(%q) = %q, %d; want port 443", s, host, port)
			}
		}
		// Hosts that are not names or addresses need not survive (a "://"
		// makes a URL of them; brackets do not nest).
		if strings.Contains(host, "://") || strings.ContainsAny(host, "[]") {
			return
		}
		hp := net.JoinHostPort(host, strconv.Itoa(int(port)))
		h2, p2, err := parseCheckTarget(hp)
		if err != nil || h2 != host || p2 != port {
			t.Fatalf("parseCheckTarget(%q) = %q, %d, but parseCheckTarget(%q) = %q, %d, %v", s, host, port, hp, h2, p2, err)
		}
	})
}

// FuzzParsePortList checks `sandgate setup --ports`: an accepted list is
// 1 to 1024 sorted, distinct ports, never 0; formatPortList writes it so that
// it reads back the same; the order of the entries does not matter; and
// two lists joined give the union of their ports.
func FuzzParsePortList(f *testing.F) {
	seeds := []string{"47100-47115", "3128,1080", "3128,8080-8083", "1", "65535", "0", "65536", "", ",", "1,", "5-3",
		"1-1024", "1-1025", " 80 , 81-82 ", "80-80", "1-2-3", "+1", "0080", "-1", "1-", "80,80,80"}
	for i, s := range seeds {
		f.Add(s, seeds[(i+7)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		pa, err := parsePortList(a)
		if err != nil {
			if pa != nil {
				t.Fatalf("parsePortList(%q) = %v with error %v", a, pa, err)
			}
			return
		}
		if len(pa) == 0 || len(pa) > 1024 || pa[0] == 0 {
			t.Fatalf("parsePortList(%q) = %v", a, pa)
		}
		for i := 1; i < len(pa); i++ {
			if pa[i] <= pa[i-1] {
				t.Fatalf("parsePortList(%q) = %v: not sorted and distinct", a, pa)
			}
		}
		text := formatPortList(pa)
		if strings.ContainsAny(text, " \t") {
			t.Fatalf("formatPortList(%v) = %q", pa, text)
		}
		if again, err := parsePortList(text); err != nil || !slices.Equal(again, pa) {
			t.Fatalf("parsePortList(%q) = %v, formatted %q, parsed %v, %v", a, pa, text, again, err)
		}
		parts := strings.Split(a, ",")
		slices.Reverse(parts)
		if rev, err := parsePortList(strings.Join(parts, ",")); err != nil || !slices.Equal(rev, pa) {
			t.Fatalf("parsePortList(%q) = %v, but reversed %v, %v", a, pa, rev, err)
		}

		pb, err := parsePortList(b)
		if err != nil {
			return
		}
		union := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(pa), pb...))))
		joined := a + "," + b
		pu, err := parsePortList(joined)
		switch {
		case err == nil:
			if !slices.Equal(pu, union) {
				t.Fatalf("parsePortList(%q) = %v, want the union %v", joined, pu, union)
			}
		case len(union) > 1024:
		default:
			t.Fatalf("parsePortList(%q): %v, though both halves parse", joined, err)
		}
	})
}
