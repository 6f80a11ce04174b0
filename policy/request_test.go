package policy

import (
	"strings"
	"testing"
)

func TestParseRuleEntry(t *testing.T) {
	tests := []struct {
		in      string
		methods string
		host    string
		port    uint16
		path    string
		str     string
	}{
		{"GET,HEAD api.example.com/repos/acme/**", "GET,HEAD", "api.example.com", 0, "/repos/acme/**", "GET,HEAD api.example.com/repos/acme/**"},
		{"* host.example/path", "*", "host.example", 0, "/path", "* host.example/path"},
		{"POST host.example:8443/x/*", "POST", "host.example", 8443, "/x/*", "POST host.example:8443/x/*"},
		{"GET example.com", "GET", "example.com", 0, "/**", "GET example.com/**"},
		{"example.com/a/%7euser", "*", "example.com", 0, "/a/~user", "* example.com/a/~user"},
		{"GET 198.51.100.0/24:80/x", "GET", "", 80, "/x", "GET 198.51.100.0/24:80/x"},
		{"GET 203.0.113.10/x", "GET", "", 0, "/x", "GET 203.0.113.10/32/x"},
		{"GET [2001:db8::1]:443/x", "GET", "", 443, "/x", "GET [2001:db8::1/128]:443/x"},
		{"example.com:443", "", "example.com", 443, "", "example.com:443"},
	}
	for _, tc := range tests {
		e, err := ParseEntry(tc.in)
		if err != nil {
			t.Errorf("ParseEntry(%q): %v", tc.in, err)
			continue
		}
		if got := strings.Join(e.Methods, ","); got != tc.methods || e.Name != tc.host || e.Port != tc.port || e.Path != tc.path {
			t.Errorf("ParseEntry(%q) = methods %q name %q port %d path %q", tc.in, got, e.Name, e.Port, e.Path)
		}
		if e.String() != tc.str {
			t.Errorf("ParseEntry(%q).String() = %q, want %q", tc.in, e.String(), tc.str)
		}
	}
}

func TestParseRuleEntryRefuses(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://example.com/", `"http://example.com/" is a URL; write the host: example.com (or example.com:80)`},
		{"https://example.com/x", `"https://example.com/x" is a URL; write the host: example.com (or example.com:443); a path rule is written "example.com/x"`},
		{"https://example.com:8443", `is a URL; write the host: example.com:8443`},
		{"get example.com", "not an upper-case HTTP method"},
		{"GET, example.com", "empty method"},
		{"G(T example.com", "not an HTTP method token"},
		{"GET  ", "methods without a host"},
		{"GET a.example b.example", "too many spaces"},
		{"GET /x", "no host"},
		{"GET example.com/x/../y", "'..' segment"},
		{"GET example.com/x/%2e%2E/y", "'..' segment"},
		{"GET example.com/x%2fy", "escaped '/'"},
		{"GET example.com/a**", "whole segment"},
		{"GET example.com/a?b=c", "holds '?'"},
		{"GET *.com/x", "public suffix"},
		{"GETT example.com/x", `"GETT" is not an HTTP method sandgate knows (did you mean GET? write e.g. GET,HEAD; * allows every method)`},
		{"GET,PSOT example.com/x", "did you mean POST?"},
		{"FROBNICATE example.com/x", `"FROBNICATE" is not an HTTP method sandgate knows (write e.g.`},
		{"GET example.com/[x", `holds '[': only * (within one segment) and ** (any number of segments) are wildcards; for a literal '[' write %5B`},
		{"GET example.com/a/{b,c}", "holds '{'"},
		{"GET example.com/a]", "%5D"},
		{"GET https://example.com/docs", `"https://example.com/docs" is a URL; write the host and path without the scheme: "GET example.com/docs"`},
		{"GET,HEAD http://[2001:db8::1]:8080/", `write the host and path without the scheme: "GET,HEAD [2001:db8::1]:8080"`},
		{"GET https://", `write METHODS HOST[:PORT][/PATH]`},
	}
	for _, tc := range tests {
		_, err := ParseEntry(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseEntry(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
	for _, c := range []struct {
		c    Config
		want string
	}{
		{Config{ReadOnly: []string{"https://docs.example.com/"}}, `invalid read-only entry "https://docs.example.com/": "https://docs.example.com/" is a URL; write the host: docs.example.com (or docs.example.com:443)`},
		{Config{ReadOnlyGit: []string{"https://github.com/acme/tool"}}, `a path rule is written "github.com/acme/tool"`},
		{Config{ReadOnly: []string{"docs.example.com/a/../b"}}, `invalid read-only entry "docs.example.com/a/../b": path "/a/../b": holds a '.' or '..' segment`},
	} {
		if _, err := New(c.c); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) error = %v, want it to contain %q", c.c, err, c.want)
		}
	}
	for _, m := range []string{"PATCH", "PROPFIND", "MKCOL", "PURGE", "QUERY", "VERSION-CONTROL"} {
		if _, err := ParseEntry(m + " example.com/x"); err != nil {
			t.Errorf("ParseEntry(%q): %v", m+" example.com/x", err)
		}
	}
	for _, c := range []Config{
		{Deny: []string{"GET example.com/x"}},
		{Inspect: []string{"GET example.com"}},
		{ReadOnly: []string{"GET example.com"}},
		{ReadOnlyGit: []string{"POST github.com/acme/*"}},
		{DeniedResolvedAddresses: []string{"GET 203.0.113.10"}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted a rule where only hosts are allowed", c)
		}
	}
}

func TestCheckRequest(t *testing.T) {
	p := mustPolicy(Config{
		Allow: []string{
			"GET,HEAD api.example.com/repos/acme/**",
			"POST api.example.com/graphql",
			"POST up.example:8443/x/*",
			"**.example.com",
			"plain.example",
			"inspected.example",
			"bad.example.com",
		},
		Deny:     []string{"bad.example.com"},
		ReadOnly: []string{"docs.example/pub/**"},
		Inspect:  []string{"inspected.example", "notallowed.example"},
	})
	tests := []struct {
		host   string
		port   uint16
		method string
		path   string
		allow  bool
		reason string
		text   string
	}{
		{"api.example.com", 443, "GET", "/repos/acme/widget/pulls?page=2", true, ReasonAllowed, `GET api.example.com/repos/acme/widget/pulls is allowed by allow entry "GET,HEAD api.example.com/repos/acme/**"`},
		{"API.example.com.", 443, "HEAD", "/repos/acme", true, ReasonAllowed, ""},
		{"api.example.com", 443, "GET", "/repos/acme/", true, ReasonAllowed, ""},
		{"api.example.com", 443, "GET", "/repos/%61cme/x", true, ReasonAllowed, ""},
		{"api.example.com", 443, "POST", "/repos/acme/x", false, ReasonBlockedByMethod, `POST api.example.com/repos/acme/x is not allowed; allowed there: GET,HEAD api.example.com/repos/acme/**`},
		{"api.example.com", 443, "POST", "/x", false, ReasonBlockedByPath, `POST api.example.com/x is not allowed; allowed there: GET,HEAD api.example.com/repos/acme/**; POST api.example.com/graphql`},
		{"api.example.com", 443, "GET", "/repos/acmeX", false, ReasonBlockedByPath, ""},
		{"api.example.com", 443, "get", "/repos/acme", false, ReasonBlockedByMethod, ""},
		{"api.example.com", 443, "POST", "/graphql", true, ReasonAllowed, ""},
		{"api.example.com", 443, "GET", "/graphql", false, ReasonBlockedByMethod, ""},
		// Tricks on the path.
		{"api.example.com", 443, "GET", "/repos/acme/../../admin", false, ReasonBlockedByPath, "'..' segment"},
		{"api.example.com", 443, "GET", "/repos/acme/%2e%2e/%2E%2e/admin", false, ReasonBlockedByPath, "'..' segment"},
		{"api.example.com", 443, "GET", "/repos/acme/..;x/admin", false, ReasonBlockedByPath, "'..' segment"},
		{"api.example.com", 443, "GET", "/repos/acme/x%2f..%2fadmin", false, ReasonBlockedByPath, "escaped '/'"},
		{"api.example.com", 443, "GET", "/repos/acme/x%5cy", false, ReasonBlockedByPath, "escaped '/'"},
		{"api.example.com", 443, "GET", `/repos/acme\..\admin`, false, ReasonBlockedByPath, "holds"},
		{"api.example.com", 443, "GET", "/repos/acme/x%00", false, ReasonBlockedByPath, "control"},
		{"api.example.com", 443, "GET", "/repos/acme/x%zz", false, ReasonBlockedByPath, "malformed"},
		{"api.example.com", 443, "GET", "//repos/acme/x", false, ReasonBlockedByPath, "empty segment"},
		{"api.example.com", 443, "GET", "repos/acme/x", false, ReasonBlockedByPath, "start with '/'"},
		// Ports.
		{"up.example", 8443, "POST", "/x/y", true, ReasonAllowed, ""},
		{"up.example", 8443, "POST", "/x/y/z", false, ReasonBlockedByPath, "POST up.example:8443/x/y/z is not allowed"},
		{"up.example", 8443, "POST", "/x/", false, ReasonBlockedByPath, ""},
		{"up.example", 443, "POST", "/x/y", false, ReasonNotAllowed, ""},
		// Read-only.
		{"docs.example", 80, "OPTIONS", "/pub/a/b", true, ReasonAllowed, `allowed by allow entry "--read-only docs.example/pub/**"`},
		{"docs.example", 80, "PUT", "/pub/a", false, ReasonBlockedByMethod, "allowed there: --read-only docs.example/pub/**"},
		// Not narrowed: plain allow, inspect without rules, deny first.
		{"www.example.com", 443, "DELETE", "/anything", true, ReasonAllowed, ""},
		{"plain.example", 80, "PUT", "/x/../y", true, ReasonAllowed, ""},
		{"inspected.example", 443, "DELETE", "/x", true, ReasonAllowed, ""},
		{"notallowed.example", 443, "GET", "/", false, ReasonNotAllowed, ""},
		{"bad.example.com", 443, "GET", "/", false, ReasonDenied, ""},
		{"127.1", 80, "GET", "/", false, ReasonNumericName, ""},
	}
	for _, tc := range tests {
		d := p.CheckRequest(tc.host, tc.port, tc.method, tc.path)
		if d.Allow != tc.allow || d.Reason != tc.reason || !strings.Contains(d.Text, tc.text) {
			t.Errorf("CheckRequest(%s:%d %s %s) = %+v, want allow=%v reason %s text containing %q",
				tc.host, tc.port, tc.method, tc.path, d, tc.allow, tc.reason, tc.text)
		}
		if !d.Allow && (d.Reason == ReasonBlockedByMethod || d.Reason == ReasonBlockedByPath) && d.Block.String() != d.Reason {
			t.Errorf("CheckRequest(%s %s): Block %v does not match reason %s", tc.method, tc.path, d.Block, d.Reason)
		}
	}
}

func TestInspects(t *testing.T) {
	p := mustPolicy(Config{
		Allow:   []string{"GET api.example.com/x", "**.example.com", "POST up.example:8443/x"},
		Inspect: []string{"*.inspect.example"},
	})
	tests := []struct {
		host string
		port uint16
		want bool
	}{
		{"api.example.com", 443, true},
		{"API.Example.com.", 80, true},
		{"www.example.com", 443, false},
		{"up.example", 8443, true},
		{"up.example", 443, false},
		{"a.inspect.example", 443, true},
		{"inspect.example", 443, false},
		{"127.1", 443, false},
	}
	for _, tc := range tests {
		if got := p.Inspects(tc.host, tc.port); got != tc.want {
			t.Errorf("Inspects(%s, %d) = %v, want %v", tc.host, tc.port, got, tc.want)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.Inspects("api.example.com", 443) {
		t.Error("a nil Policy inspects")
	}
}

func TestReadOnlyGit(t *testing.T) {
	p := mustPolicy(Config{ReadOnlyGit: []string{"github.com/acme/*", "git.example/team/tool.git"}})
	tests := []struct {
		host, method, path string
		allow              bool
		reason             string
	}{
		{"github.com", "GET", "/acme/widget/info/refs?service=git-upload-pack", true, ReasonAllowed},
		{"github.com", "GET", "/acme/widget.git/info/refs?service=git-upload-pack", true, ReasonAllowed},
		{"github.com", "POST", "/acme/widget.git/git-upload-pack", true, ReasonAllowed},
		{"github.com", "POST", "/acme/widget/git-upload-pack", true, ReasonAllowed},
		// Push, and tricks around it.
		{"github.com", "GET", "/acme/widget/info/refs?service=git-receive-pack", false, ReasonBlockedByPath},
		{"github.com", "GET", "/acme/widget/info/refs?service=git-upload-pack&service=git-receive-pack", false, ReasonBlockedByPath},
		{"github.com", "GET", "/acme/widget/info/refs", false, ReasonBlockedByPath},
		{"github.com", "POST", "/acme/widget.git/git-receive-pack", false, ReasonBlockedByPath},
		{"github.com", "GET", "/acme/widget/git-upload-pack", false, ReasonBlockedByMethod},
		{"github.com", "POST", "/acme/widget/info/refs?service=git-upload-pack", false, ReasonBlockedByMethod},
		{"github.com", "GET", "/other/widget/info/refs?service=git-upload-pack", false, ReasonBlockedByPath},
		{"github.com", "GET", "/acme/a/b/info/refs?service=git-upload-pack", false, ReasonBlockedByPath},
		{"github.com", "GET", "/acme/widget/info/refs/../../x/git-upload-pack", false, ReasonBlockedByPath},
		// A named repository, with and without ".git".
		{"git.example", "GET", "/team/tool/info/refs?service=git-upload-pack", true, ReasonAllowed},
		{"git.example", "POST", "/team/tool.git/git-upload-pack", true, ReasonAllowed},
		{"git.example", "POST", "/team/other.git/git-upload-pack", false, ReasonBlockedByPath},
		{"git.example", "POST", "/team/tool.git/git-receive-pack", false, ReasonBlockedByPath},
	}
	for _, tc := range tests {
		d := p.CheckRequest(tc.host, 443, tc.method, tc.path)
		if d.Allow != tc.allow || d.Reason != tc.reason {
			t.Errorf("CheckRequest(%s %s%s) = %+v, want allow=%v reason %s", tc.method, tc.host, tc.path, d, tc.allow, tc.reason)
		}
	}
	d := p.CheckRequest("github.com", 443, "POST", "/acme/w/git-receive-pack")
	if !strings.Contains(d.Text, `allowed there: --read-only-git github.com/acme/*`) {
		t.Errorf("push refusal text %q does not name the shortcut", d.Text)
	}
	d = p.CheckRequest("github.com", 443, "GET", "/acme/w/info/refs?service=git-receive-pack")
	if d.Allow || !strings.HasPrefix(d.Text, "GET github.com/acme/w/info/refs?service=git-receive-pack is not allowed") {
		t.Errorf("push discovery refusal text %q does not show the query a rule decides by", d.Text)
	}
	if !p.Inspects("github.com", 443) || p.CheckTarget(mustTarget("github.com", 443)).Allow != true {
		t.Error("a read-only git host is not allowed and inspected")
	}
}

func TestInspectsAny(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want bool
	}{
		{Config{}, false},
		{Config{Allow: []string{"a.test", "b.test:443"}}, false},
		{Config{Allow: []string{"GET a.test"}}, true},
		{Config{Allow: []string{"a.test/x/**"}}, true},
		{Config{ReadOnly: []string{"a.test"}}, true},
		{Config{ReadOnlyGit: []string{"git.test/acme/*"}}, true},
		{Config{Allow: []string{"a.test"}, Inspect: []string{"a.test"}}, true},
	} {
		p, err := New(tc.cfg)
		if err != nil {
			t.Fatalf("New(%+v): %v", tc.cfg, err)
		}
		if got := p.InspectsAny(); got != tc.want {
			t.Errorf("InspectsAny(%+v) = %v, want %v", tc.cfg, got, tc.want)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.InspectsAny() {
		t.Error("a nil Policy inspects")
	}
}

func TestRefusalSuggestsRule(t *testing.T) {
	p, err := New(Config{ReadOnly: []string{"docs.example/pub/**"}, Allow: []string{"GET [2001:db8::1]:8080/x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host        string
		port        uint16
		method      string
		path        string
		want        string
		noSuggestIs bool
	}{
		{"docs.example", 443, "POST", "/pub/a?x=1", "; to allow it, add --allow 'POST docs.example:443/pub/a'", false},
		{"docs.example", 80, "GET", "/other", "; to allow it, add --allow 'GET docs.example:80/other'", false},
		{"2001:db8::1", 8080, "PUT", "/x", "; to allow it, add --allow 'PUT [2001:db8::1]:8080/x'", false},
		{"docs.example", 443, "GET", "/it's", "", true},
		{"docs.example", 443, "GET", "/a*b", "", true},
	} {
		d := p.CheckRequest(tc.host, tc.port, tc.method, tc.path)
		if d.Allow {
			t.Fatalf("%s %s%s allowed", tc.method, tc.host, tc.path)
		}
		if tc.noSuggestIs {
			if strings.Contains(d.Text, "to allow it") {
				t.Errorf("%q suggests a rule", d.Text)
			}
			continue
		}
		if !strings.HasSuffix(d.Text, tc.want) {
			t.Errorf("text %q does not end with %q", d.Text, tc.want)
			continue
		}
		rule := strings.TrimSuffix(strings.TrimPrefix(tc.want, "; to allow it, add --allow '"), "'")
		q, err := New(Config{Allow: []string{rule}})
		if err != nil {
			t.Fatalf("suggested rule %q: %v", rule, err)
		}
		if d := q.CheckRequest(tc.host, tc.port, tc.method, tc.path); !d.Allow {
			t.Errorf("the suggested rule %q does not allow the request: %s", rule, d.Text)
		}
	}
}
