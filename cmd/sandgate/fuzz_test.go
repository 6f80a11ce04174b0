package main

import (
	"net"
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
