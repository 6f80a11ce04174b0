package secrets

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/policy"
)

func FuzzParseFlag(f *testing.F) {
	for _, s := range []string{
		"GITHUB_TOKEN=api.github.com,github.com",
		"K@/run/keys/k=a.example.com:443",
		"K@/a=b=c.example",
		"T=**.example.com,[2001:db8::/32]:443",
		"T=GET example.com/x",
		"=", "@=", "T@", "T=,", "T=a.example,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseFlag(s)
		if err != nil {
			if !strings.Contains(err.Error(), "--secret") {
				t.Fatalf("error %q does not name the flag", err)
			}
			return
		}
		if CheckName(sp.Name) != nil || len(sp.Hosts) == 0 {
			t.Fatalf("accepted %q with name %q and %d hosts", s, sp.Name, len(sp.Hosts))
		}
		for _, h := range sp.Hosts {
			if h.Methods != nil || h.Path != "" {
				t.Fatalf("accepted a method/path rule in %q", s)
			}
		}
		again, err := ParseFlag(sp.String())
		if err != nil || again.String() != sp.String() || again.File != sp.File {
			t.Fatalf("%q: String() %q does not parse back: %v", s, sp.String(), err)
		}
	})
}

// FuzzScan puts a placeholder (or not) into fuzzed header, query and
// userinfo text and checks the scanner's promises: a request to an unbound
// host with the placeholder anywhere in them is refused and unchanged; one
// without it passes unchanged; on the bound host no placeholder is left in
// the rewritten places and the real value is never sent elsewhere.
func FuzzScan(f *testing.F) {
	f.Add("Bearer ", "", "a=1&t=", 0, true)
	f.Add("basic ", "", "", 3, true)
	f.Add("x", "user", "%41", 1, false)
	f.Add("Basic Z2hwXzo=", "u", "q", 2, true)
	const value = "ghp_Fuzz0RealValue0123456789abcdefABCD"
	set, err := New(testRand(11), Binding{Name: "T", Value: value, Hosts: mustHosts("bound.example.com")})
	if err != nil {
		f.Fatal(err)
	}
	ph := strings.TrimPrefix(set.Env()[0], "T=")
	f.Fuzz(func(t *testing.T, header, user, query string, where int, insert bool) {
		if insert {
			switch where & 3 {
			case 0:
				header += ph
			case 1:
				query += ph
			case 2:
				user += ph
			case 3:
				header = "Basic " + b64(user+":"+ph)
			}
		}
		build := func() *http.Request {
			r := &http.Request{Method: "GET", Header: http.Header{}, URL: &url.URL{Scheme: "https", Host: "h.example", Path: "/", RawQuery: query}}
			r.Header["X-F"] = []string{header}
			if user != "" {
				r.URL.User = url.UserPassword(user, "pw")
			}
			return r
		}
		contains := strings.Contains(header, ph) || strings.Contains(query, ph) || strings.Contains(user, ph)
		if d, err := url.QueryUnescape(query); err == nil && strings.Contains(d, ph) {
			contains = true
		}
		if c, _, ok := basicCredentials(header); ok && strings.Contains(c, ph) {
			contains = true
		}
		r := build()
		err := set.Apply("other.example.com", 443, r)
		if contains != errors.Is(err, ErrNotBound) {
			t.Fatalf("unbound host: placeholder present %v, Apply error %v", contains, err)
		}
		if err != nil && !errors.Is(err, ErrNotBound) {
			t.Fatalf("unexpected error: %v", err)
		}
		if r.Header.Get("X-F") != header || r.URL.RawQuery != query || strings.Contains(r.URL.String(), value) {
			t.Fatalf("request to an unbound host changed or holds the value: %v %q", r.URL, r.Header)
		}
		r = build()
		if err := set.Apply("bound.example.com", 443, r); err != nil {
			t.Fatalf("bound host: %v", err)
		}
		got := r.Header.Get("X-F")
		if c, _, ok := basicCredentials(got); ok && strings.Contains(c, ph) {
			t.Fatalf("placeholder left in Basic credentials %q", got)
		}
		if strings.Contains(got, ph) || strings.Contains(r.URL.RawQuery, ph) || (r.URL.User != nil && strings.Contains(r.URL.User.Username(), ph)) {
			t.Fatalf("placeholder left after Apply: %q %v", got, r.URL)
		}
	})
}

func mustHosts(ps ...string) []policy.Entry {
	es, err := ParseHosts(ps)
	if err != nil {
		panic(err)
	}
	return es
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
