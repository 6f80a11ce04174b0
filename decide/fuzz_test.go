package decide

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func FuzzDecodeAnswer(f *testing.F) {
	for _, s := range []string{
		`{"decision":"allow","scope":"run"}`, `{"decision":"allow"}`, `{"decision":"deny"}`,
		`{"decision":"deny","decision":"allow"}`, `{"Decision":"allow"}`, `{}`, ``, `[]`,
		`{"decision":"allow"} {"decision":"allow"}`, `{"decision":"allow","scope":null}`,
		"{\"decision\":\"allow\\u0000\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ans, err := DecodeAnswer(b)
		if err != nil {
			if ans != (Answer{}) {
				t.Fatalf("an error came with %+v", ans)
			}
			return
		}
		if ans.Allow && ans.Scope != ScopeOnce && ans.Scope != ScopeRun {
			t.Fatalf("allow with scope %q", ans.Scope)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:8700/decide", "http://[::1]:1/", "http://localhost:9/x", "unix:/run/d.sock",
		"unix:d.sock", "https://127.0.0.1:1/", "http://203.0.113.1:80/", "http://u@127.0.0.1:1/", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		post, socket, err := ParseURL(s)
		if err != nil {
			return
		}
		if socket != "" {
			if !strings.HasPrefix(socket, "/") || post != "http://decider/" {
				t.Fatalf("ParseURL(%q) = %q, %q", s, post, socket)
			}
			return
		}
		u, perr := url.Parse(post)
		if perr != nil || u.Scheme != "http" || u.User != nil || u.Port() == "" {
			t.Fatalf("ParseURL(%q) gave %q (%v)", s, post, perr)
		}
		if h := u.Hostname(); h != "localhost" {
			if a, err := netip.ParseAddr(h); err != nil || !a.IsLoopback() {
				t.Fatalf("ParseURL(%q) gave the non-loopback host %q", s, h)
			}
		}
	})
}
