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

// proxySecrets is a copy of the interface package proxy defines for the
// secrets of a run; *Set must satisfy it.
type proxySecrets interface {
	Binds(host string, port uint16) bool
	Apply(host string, port uint16, r *http.Request) error
}

var _ proxySecrets = (*Set)(nil)

const (
	ghValue  = "ghp_R3alT0kenValue0123456789abcdefABCD"
	keyValue = "sk-ant-api03-Real_Key-value-0123456789abcdefghijklmnop"
)

func hosts(t *testing.T, ps ...string) []policy.Entry {
	t.Helper()
	es, err := ParseHosts(ps)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// testSet is GITHUB_TOKEN bound to api.github.com and github.com, and
// API_KEY bound to **.api.example.com on port 443.
func testSet(t *testing.T) *Set {
	t.Helper()
	s, err := New(testRand(7),
		Binding{Name: "GITHUB_TOKEN", Value: ghValue, Hosts: hosts(t, "api.github.com", "github.com")},
		Binding{Name: "API_KEY", Value: keyValue, Hosts: hosts(t, "**.api.example.com:443")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func placeholderOf(t *testing.T, s *Set, name string) string {
	t.Helper()
	for _, kv := range s.Env() {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s in Env()", name)
	return ""
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestApplyShapes(t *testing.T) {
	s := testSet(t)
	gh := placeholderOf(t, s, "GITHUB_TOKEN")
	key := placeholderOf(t, s, "API_KEY")
	tests := []struct {
		name       string
		url        string
		header     [2]string // name, value ("" for none)
		host       string
		port       uint16
		wantHeader string // the header's value after Apply
		wantURL    string // the URL after Apply ("" = unchanged)
	}{
		{name: "Bearer", url: "https://api.github.com/user", header: [2]string{"Authorization", "Bearer " + gh},
			host: "api.github.com", port: 443, wantHeader: "Bearer " + ghValue},
		{name: "token", url: "https://api.github.com/user", header: [2]string{"Authorization", "token " + gh},
			host: "API.GitHub.com.", port: 443, wantHeader: "token " + ghValue},
		{name: "Basic as git sends it", url: "https://github.com/acme/repo.git/info/refs?service=git-upload-pack",
			header: [2]string{"Authorization", basic("x-access-token", gh)}, host: "github.com", port: 443,
			wantHeader: basic("x-access-token", ghValue)},
		{name: "Basic unpadded, lower-case scheme", url: "https://github.com/",
			header: [2]string{"Authorization", "basic  " + base64.RawStdEncoding.EncodeToString([]byte(gh+":x-oauth-basic"))},
			host:   "github.com", port: 443, wantHeader: "basic  " + base64.StdEncoding.EncodeToString([]byte(ghValue+":x-oauth-basic"))},
		{name: "x-api-key", url: "https://v1.api.example.com/messages", header: [2]string{"X-Api-Key", key},
			host: "v1.api.example.com", port: 443, wantHeader: keyValue},
		{name: "any header, inside text", url: "https://api.example.com/", header: [2]string{"Cookie", "a=1; k=" + key + "; b=2"},
			host: "api.example.com", port: 443, wantHeader: "a=1; k=" + keyValue + "; b=2"},
		{name: "query access_token", url: "https://api.github.com/user?per_page=1&access_token=" + gh,
			host: "api.github.com", port: 443, wantURL: "https://api.github.com/user?per_page=1&access_token=" + ghValue},
		{name: "query value escaped", url: "https://api.example.com/x?k=" + key,
			host: "api.example.com", port: 443, wantURL: "https://api.example.com/x?k=" + url.QueryEscape(keyValue)},
		{name: "URL userinfo", url: "https://x-access-token:" + gh + "@github.com/acme/repo.git",
			host: "github.com", port: 443, wantURL: "https://x-access-token:" + ghValue + "@github.com/acme/repo.git"},
		{name: "URL user only", url: "https://" + gh + "@github.com/",
			host: "github.com", port: 443, wantURL: "https://" + ghValue + "@github.com/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest("GET", tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header[0] != "" {
				r.Header.Set(tt.header[0], tt.header[1])
			}
			r.Header.Set("User-Agent", "test/1")
			if err := s.Apply(tt.host, tt.port, r); err != nil {
				t.Fatalf("Apply to the bound host: %v", err)
			}
			if tt.header[0] != "" {
				if got := r.Header.Get(tt.header[0]); got != tt.wantHeader {
					t.Errorf("%s = %q, want %q", tt.header[0], got, tt.wantHeader)
				}
			}
			if r.Header.Get("User-Agent") != "test/1" {
				t.Errorf("an unrelated header changed: %q", r.Header.Get("User-Agent"))
			}
			want := tt.wantURL
			if want == "" {
				want = tt.url
			}
			if got := r.URL.String(); got != want {
				t.Errorf("URL = %q, want %q", got, want)
			}

			// The same request to a host neither secret is bound to.
			r2, _ := http.NewRequest("GET", tt.url, nil)
			if tt.header[0] != "" {
				r2.Header.Set(tt.header[0], tt.header[1])
			}
			before := r2.Header.Clone()
			err = s.Apply("evil.example.net", 443, r2)
			if !errors.Is(err, ErrNotBound) {
				t.Fatalf("Apply to an unbound host: %v, want ErrNotBound", err)
			}
			if strings.Contains(err.Error(), gh) || strings.Contains(err.Error(), key) || strings.Contains(err.Error(), ghValue) || strings.Contains(err.Error(), keyValue) {
				t.Errorf("the error holds a placeholder or value: %v", err)
			}
			if r2.URL.String() != tt.url || r2.Header.Get(tt.header[0]) != before.Get(tt.header[0]) {
				t.Errorf("a refused request was changed: %q %q", r2.URL, r2.Header)
			}
		})
	}
}

func TestApplyRefusals(t *testing.T) {
	s := testSet(t)
	gh := placeholderOf(t, s, "GITHUB_TOKEN")
	key := placeholderOf(t, s, "API_KEY")
	pct := func(p string) string {
		var b strings.Builder
		for i := 0; i < len(p); i++ {
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[p[i]>>4])+string("0123456789abcdef"[p[i]&15])))
		}
		return b.String()
	}
	tests := []struct {
		name   string
		host   string
		port   uint16
		modify func(r *http.Request)
		where  string // in the error
		secret string
	}{
		{"header value", "gist.example.org", 443, func(r *http.Request) { r.Header.Set("X-Note", gh) }, "header X-Note", "GITHUB_TOKEN"},
		{"header name", "gist.example.org", 443, func(r *http.Request) { r.Header.Set("X-"+gh, "1") }, "header name", "GITHUB_TOKEN"},
		{"basic", "gist.example.org", 443, func(r *http.Request) { r.Header.Set("Authorization", basic("u", gh)) }, "Basic credentials", "GITHUB_TOKEN"},
		{"trailer", "gist.example.org", 443, func(r *http.Request) { r.Trailer = http.Header{"X-T": {gh}} }, "trailer X-T", "GITHUB_TOKEN"},
		{"Host", "gist.example.org", 443, func(r *http.Request) { r.Host = strings.ToLower(gh) + ".gist.example.org" }, "Host", "GITHUB_TOKEN"},
		{"path", "gist.example.org", 443, func(r *http.Request) { r.URL.Path = "/x/" + gh }, "URL path", "GITHUB_TOKEN"},
		{"query", "gist.example.org", 443, func(r *http.Request) { r.URL.RawQuery = "t=" + gh }, "URL query", "GITHUB_TOKEN"},
		{"percent-encoded query", "gist.example.org", 443, func(r *http.Request) { r.URL.RawQuery = "t=" + pct(gh) }, "URL query (decoded)", "GITHUB_TOKEN"},
		{"userinfo password", "gist.example.org", 443, func(r *http.Request) { r.URL.User = url.UserPassword("u", gh) }, "URL userinfo", "GITHUB_TOKEN"},
		{"request URI", "gist.example.org", 443, func(r *http.Request) { r.RequestURI = "/?" + pct(gh) }, "request URI", "GITHUB_TOKEN"},
		{"bound port only", "v1.api.example.com", 80, func(r *http.Request) { r.Header.Set("X-Api-Key", key) }, "header X-Api-Key", "API_KEY"},
		{"apex not in **. pattern's port", "api.example.com", 8443, func(r *http.Request) { r.Header.Set("X-Api-Key", key) }, "header X-Api-Key", "API_KEY"},
		{"other secret's host", "api.github.com", 443, func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+gh)
			r.Header.Set("X-Api-Key", key)
		}, "header X-Api-Key", "API_KEY"},
		{"subdomain of an exact pattern", "uploads.github.com", 443, func(r *http.Request) { r.Header.Set("Authorization", "token "+gh) }, "header Authorization", "GITHUB_TOKEN"},
		{"unparsable host", "bad host", 443, func(r *http.Request) { r.Header.Set("Authorization", "token "+gh) }, "header Authorization", "GITHUB_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest("POST", "https://target.example/", strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			tt.modify(r)
			before := r.Header.Clone()
			err = s.Apply(tt.host, tt.port, r)
			if !errors.Is(err, ErrNotBound) {
				t.Fatalf("Apply: %v, want ErrNotBound", err)
			}
			if !strings.Contains(err.Error(), "secret "+tt.secret) || !strings.Contains(err.Error(), tt.where) {
				t.Errorf("error %q does not name secret %s and %q", err, tt.secret, tt.where)
			}
			var nb *NotBoundError
			if !errors.As(err, &nb) || nb.Name != tt.secret || !strings.Contains(nb.Where, tt.where) {
				t.Errorf("error %#v is not a *NotBoundError for %s", err, tt.secret)
			}
			for k, vs := range r.Header {
				if strings.Join(vs, ",") != strings.Join(before[k], ",") {
					t.Errorf("header %s changed on a refused request", k)
				}
			}
			if strings.Contains(r.Header.Get("Authorization"), ghValue) {
				t.Error("real value written into a refused request")
			}
		})
	}
}

func TestApplyNoPlaceholder(t *testing.T) {
	s := testSet(t)
	for _, host := range []string{"api.github.com", "elsewhere.example.org"} {
		r, _ := http.NewRequest("GET", "https://"+host+"/a?b=c", nil)
		r.Header.Set("Authorization", "Bearer someone-elses-token")
		if err := s.Apply(host, 443, r); err != nil {
			t.Errorf("Apply(%s) without placeholders: %v", host, err)
		}
		if r.Header.Get("Authorization") != "Bearer someone-elses-token" || r.URL.String() != "https://"+host+"/a?b=c" {
			t.Errorf("request without placeholders changed: %v %v", r.URL, r.Header)
		}
	}
	var nilSet *Set
	if err := nilSet.Apply("x.example", 443, &http.Request{}); err != nil || nilSet.Binds("x.example", 443) || nilSet.Env() != nil {
		t.Error("a nil Set is not empty")
	}
}

func TestApplyMultipleSecrets(t *testing.T) {
	s, err := New(testRand(3),
		Binding{Name: "A", Value: "aaaaaaaa-0123456789abcdefghij", Hosts: hosts(t, "a.example.com", "both.example.com")},
		Binding{Name: "B", Value: "bbbbbbbb-0123456789abcdefghij", Hosts: hosts(t, "b.example.com", "both.example.com")})
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := placeholderOf(t, s, "A"), placeholderOf(t, s, "B")
	r, _ := http.NewRequest("GET", "https://both.example.com/?a="+pa+"&b="+pb, nil)
	r.Header.Set("Authorization", basic(pa, pb))
	if err := s.Apply("both.example.com", 443, r); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Header.Get("Authorization"), basic("aaaaaaaa-0123456789abcdefghij", "bbbbbbbb-0123456789abcdefghij"); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	if got := r.URL.RawQuery; got != "a=aaaaaaaa-0123456789abcdefghij&b=bbbbbbbb-0123456789abcdefghij" {
		t.Errorf("query %q", got)
	}
	for _, c := range []struct {
		host  string
		ok    bool
		which string
	}{{"a.example.com", false, "secret B"}, {"b.example.com", false, "secret A"}, {"both.example.com", true, ""}} {
		r, _ := http.NewRequest("GET", "https://"+c.host+"/", nil)
		r.Header.Set("X-A", pa)
		r.Header.Set("X-B", pb)
		err := s.Apply(c.host, 443, r)
		if c.ok != (err == nil) || (!c.ok && !strings.Contains(err.Error(), c.which)) {
			t.Errorf("Apply(%s) = %v, want ok=%v naming %q", c.host, err, c.ok, c.which)
		}
	}
}

func TestBinds(t *testing.T) {
	s, err := New(testRand(5), Binding{Name: "T", Value: ghValue,
		Hosts: hosts(t, "github.com", "*.githubusercontent.com", "**.api.example.com:443", "203.0.113.0/24", "[2001:db8::1]:8443")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		port uint16
		want bool
	}{
		{"github.com", 443, true},
		{"GitHub.com.", 80, true},
		{"api.github.com", 443, false},
		{"raw.githubusercontent.com", 443, true},
		{"githubusercontent.com", 443, false},
		{"api.example.com", 443, true},
		{"x.api.example.com", 443, true},
		{"x.api.example.com", 80, false},
		{"203.0.113.9", 443, true},
		{"198.51.100.1", 443, false},
		{"2001:db8::1", 8443, true},
		{"[2001:db8::1]", 8443, true},
		{"[2001:db8::1]", 443, false},
		{"evilgithub.com", 443, false},
		{"", 443, false},
		{"github.com", 0, false},
	}
	for _, tt := range tests {
		if got := s.Binds(tt.host, tt.port); got != tt.want {
			t.Errorf("Binds(%q, %d) = %v, want %v", tt.host, tt.port, got, tt.want)
		}
	}
}

func TestPlaceholderUniqueness(t *testing.T) {
	seen := map[string]bool{}
	for seed := range uint64(200) {
		s, err := New(testRand(seed),
			Binding{Name: "A", Value: ghValue, Hosts: hosts(t, "a.example.com")},
			Binding{Name: "B", Value: ghValue, Hosts: hosts(t, "b.example.com")})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"A", "B"} {
			p := placeholderOf(t, s, n)
			if seen[p] || p == ghValue {
				t.Fatalf("placeholder %q repeated or equal to the value (seed %d)", p, seed)
			}
			seen[p] = true
		}
	}
	// A source that always gives the same bytes cannot make two distinct
	// placeholders: New must say so, not hand out a clash.
	_, err := New(zeroReader{},
		Binding{Name: "A", Value: "abcdefghijabcdefghij", Hosts: hosts(t, "a.example.com")},
		Binding{Name: "B", Value: "abcdefghijabcdefghij", Hosts: hosts(t, "b.example.com")})
	if err == nil || !strings.Contains(err.Error(), "no placeholder found") {
		t.Errorf("constant random source: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestNewRefusals(t *testing.T) {
	h := hosts(t, "a.example.com")
	tests := []struct {
		name string
		bs   []Binding
		want string
	}{
		{"short", []Binding{{Name: "T", Value: "abc123", Hosts: h}}, "too short"},
		{"separators only", []Binding{{Name: "T", Value: "----------------", Hosts: h}}, "too short"},
		{"empty", []Binding{{Name: "T", Value: "", Hosts: h}}, "empty value"},
		{"no hosts", []Binding{{Name: "T", Value: ghValue}}, "no hosts"},
		{"twice", []Binding{{Name: "T", Value: ghValue, Hosts: h}, {Name: "T", Value: keyValue, Hosts: h}}, "given twice"},
		{"bad name", []Binding{{Name: "T-1", Value: ghValue, Hosts: h}}, "not an environment variable name"},
		{"newline", []Binding{{Name: "T", Value: ghValue + "\n", Hosts: h}}, "printable ASCII"},
	}
	for _, tt := range tests {
		if _, err := New(testRand(1), tt.bs...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestNotes(t *testing.T) {
	s, err := New(testRand(1),
		Binding{Name: "AWS_ACCESS_KEY_ID", Value: "AKIAIOSFODNN7EXAMPLE", Hosts: hosts(t, "**.amazonaws.com")},
		Binding{Name: "GITHUB_TOKEN", Value: ghValue, Hosts: hosts(t, "github.com")})
	if err != nil {
		t.Fatal(err)
	}
	notes := s.Notes()
	if len(notes) != 1 || !strings.Contains(notes[0], "AWS_ACCESS_KEY_ID") || !strings.Contains(notes[0], "bits") {
		t.Errorf("Notes = %q, want one about AWS_ACCESS_KEY_ID", notes)
	}
	if p := placeholderOf(t, s, "AWS_ACCESS_KEY_ID"); !strings.HasPrefix(p, "AKIA") || len(p) != 20 {
		t.Errorf("AWS placeholder %q lost its shape", p)
	}
}

func TestRedact(t *testing.T) {
	s := testSet(t)
	gh := placeholderOf(t, s, "GITHUB_TOKEN")
	key := placeholderOf(t, s, "API_KEY")
	in := "GET /?t=" + ghValue + " Authorization: " + gh + " key=" + url.QueryEscape(keyValue) + " raw " + keyValue + " p " + key
	out := s.Redact(in)
	for _, bad := range []string{ghValue, gh, keyValue, url.QueryEscape(keyValue), key} {
		if strings.Contains(out, bad) {
			t.Errorf("Redact output %q still holds %q", out, bad)
		}
	}
	if strings.Count(out, "[secret:GITHUB_TOKEN]") != 2 || strings.Count(out, "[secret:API_KEY]") != 3 {
		t.Errorf("Redact output %q: want 2 GITHUB_TOKEN and 3 API_KEY tags", out)
	}
	if got := s.Redact("nothing here"); got != "nothing here" {
		t.Errorf("Redact changed plain text: %q", got)
	}
}

func TestEnvAndNames(t *testing.T) {
	s := testSet(t)
	env := s.Env()
	if len(env) != 2 || !strings.HasPrefix(env[0], "GITHUB_TOKEN=ghp_") || !strings.HasPrefix(env[1], "API_KEY=sk-ant-api03-") {
		t.Errorf("Env = %q", env)
	}
	for _, kv := range env {
		if strings.Contains(kv, ghValue) || strings.Contains(kv, keyValue) {
			t.Errorf("Env entry %q holds a real value", kv)
		}
	}
	if n := s.Names(); len(n) != 2 || n[0] != "GITHUB_TOKEN" || n[1] != "API_KEY" || s.Len() != 2 {
		t.Errorf("Names = %q", n)
	}
}

func TestConceal(t *testing.T) {
	s := testSet(t)
	gh := placeholderOf(t, s, "GITHUB_TOKEN")
	key := placeholderOf(t, s, "API_KEY")
	in := "GH_TOKEN=" + ghValue + " both " + keyValue + ghValue
	want := "GH_TOKEN=" + gh + " both " + key + gh
	if got := s.Conceal(in); got != want {
		t.Errorf("Conceal = %q, want %q", got, want)
	}
	var nilSet *Set
	if nilSet.Conceal(in) != in || nilSet.Redact(in) != in {
		t.Error("a nil Set changed text")
	}
}
