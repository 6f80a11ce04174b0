package main

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/egress"
)

// noSuchHost is a resolver for which every name is NXDOMAIN.
type noSuchHost struct{ asked []string }

func (r *noSuchHost) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, host)
	return nil, errors.New("lookup " + host + ": no such host")
}

// TestCheckAllowedButUnresolved: an allowed name that does not resolve
// says which entry allows it and why it cannot be reached, exit 3; a name
// the policy refuses is still a plain deny (exit 1) without a lookup.
func TestCheckAllowedButUnresolved(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	r := &noSuchHost{}
	checkResolver = r
	t.Cleanup(func() { checkResolver = nil })
	code, out, _ := runCLI(t, "check", "--allow", "*.example.invalid", "https://www.example.invalid/")
	want := `allowed by entry "*.example.invalid", but www.example.invalid does not resolve from here (look up www.example.invalid: lookup www.example.invalid.: no such host)`
	if code != exitUnresolved || strings.TrimSpace(out) != want {
		t.Errorf("exit %d, stdout %q; want exit %d and %q", code, out, exitUnresolved, want)
	}
	if len(r.asked) != 1 {
		t.Errorf("lookups %v, want exactly one", r.asked)
	}
	code, out, _ = runCLI(t, "check", "--allow", "*.example.invalid", "other.invalid")
	if code != exitDenied || !strings.HasPrefix(out, "deny other.invalid:443 (not-allowed)") || len(r.asked) != 1 {
		t.Errorf("refused name: exit %d, stdout %q, lookups %v", code, out, r.asked)
	}
}

func TestCheckHelpDocumentsExitThree(t *testing.T) {
	code, out, _ := runCLI(t, "check", "--help")
	if code != 0 || !strings.Contains(out, "3 allowed by an entry but the name does") {
		t.Errorf("exit %d, help %q", code, out)
	}
}

func TestParseCheckArgs(t *testing.T) {
	tests := []struct {
		args         []string
		method, path string // the flags
		want         checkRequest
		err          string
	}{
		{args: []string{"api.example.com"}, want: checkRequest{host: "api.example.com", port: 443}},
		{args: []string{"api.example.com:8443"}, want: checkRequest{host: "api.example.com", port: 8443}},
		{args: []string{"https://api.example.com"}, want: checkRequest{host: "api.example.com", port: 443, request: true, method: "GET", path: "/"}},
		{args: []string{"http://api.example.com/x/y?a=1"}, want: checkRequest{host: "api.example.com", port: 80, request: true, method: "GET", path: "/x/y?a=1"}},
		{args: []string{"https://api.example.com?q=1"}, want: checkRequest{host: "api.example.com", port: 443, request: true, method: "GET", path: "/?q=1"}},
		{args: []string{"https://api.example.com/a%2Fb"}, want: checkRequest{host: "api.example.com", port: 443, request: true, method: "GET", path: "/a%2Fb"}},
		{args: []string{"POST https://api.example.com/x"}, want: checkRequest{host: "api.example.com", port: 443, request: true, method: "POST", path: "/x"}},
		{args: []string{"  DELETE   api.example.com  "}, want: checkRequest{host: "api.example.com", port: 443, request: true, method: "DELETE", path: "/"}},
		{args: []string{"PUT", "https://[2001:db8::1]:8443/x"}, want: checkRequest{host: "2001:db8::1", port: 8443, request: true, method: "PUT", path: "/x"}},
		{args: []string{"api.example.com"}, method: "POST", want: checkRequest{host: "api.example.com", port: 443, request: true, method: "POST", path: "/"}},
		{args: []string{"api.example.com"}, path: "/repos/acme/x", want: checkRequest{host: "api.example.com", port: 443, request: true, method: "GET", path: "/repos/acme/x"}},
		{args: []string{"https://api.example.com/"}, method: "HEAD", path: "/x?q=1", want: checkRequest{host: "api.example.com", port: 443, request: true, method: "HEAD", path: "/x?q=1"}},
		{args: []string{"POST", "api.example.com"}, method: "POST", want: checkRequest{host: "api.example.com", port: 443, request: true, method: "POST", path: "/"}},

		{args: []string{"POST", "api.example.com"}, method: "PUT", err: "method is given twice"},
		{args: []string{"https://api.example.com/x"}, path: "/y", err: "path is given twice"},
		{args: []string{"post https://api.example.com/x"}, err: `invalid method "post": write an upper-case`},
		{args: []string{"G T", "api.example.com"}, err: `invalid method "G T"`},
		{args: []string{"GET https://a.example/ extra"}, err: "write [METHOD] TARGET"},
		{args: []string{"api.example.com"}, path: "x", err: `invalid --path "x": a path starts with '/' (write "/x"`},
		{args: []string{"api.example.com"}, path: "/a b", err: "escape spaces"},
		{args: []string{"GET", "api.example.com:0"}, err: "invalid target"},
	}
	for _, tt := range tests {
		got, err := parseCheckArgs(tt.args, tt.method, tt.path)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseCheckArgs(%q, %q, %q) = %+v, %v; want an error with %q", tt.args, tt.method, tt.path, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseCheckArgs(%q, %q, %q) = %+v, %v; want %+v", tt.args, tt.method, tt.path, got, err, tt.want)
		}
	}
}

// TestCheckRequest: `sandgate check` decides a method and path as the
// proxy would, exit 0 allowed, 1 refused (by the rules, before any lookup),
// 3 allowed but unresolvable; a host without rules says it is not
// inspected.
func TestCheckRequest(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	r := &egress.StaticResolver{Hosts: map[string][]netip.Addr{
		"api.example.com": {netip.MustParseAddr("203.0.113.10")},
		"git.example.com": {netip.MustParseAddr("203.0.113.11")},
		"cdn.example.com": {netip.MustParseAddr("203.0.113.12")},
	}}
	checkResolver = r
	t.Cleanup(func() { checkResolver = nil })
	ro := []string{"--read-only", "api.example.com", "--read-only-git", "git.example.com/acme/*", "--allow", "cdn.example.com",
		"--allow", "POST api.example.com/upload/*", "--read-only", "gone.example.invalid"}
	tests := []struct {
		args []string
		code int
		out  []string
	}{
		{[]string{"POST https://api.example.com/x"}, exitDenied, []string{
			"deny POST api.example.com:443/x (blocked-by-method): POST api.example.com/x is not allowed; allowed there: --read-only api.example.com",
			"to allow it, add --allow 'POST api.example.com:443/x'"}},
		{[]string{"POST", "https://api.example.com/upload/a"}, 0, []string{
			`allow POST api.example.com:443/upload/a (allowed) by entry "POST api.example.com/upload/*"; inspected; would dial 203.0.113.10`}},
		{[]string{"https://api.example.com/docs"}, 0, []string{`allow GET api.example.com:443/docs (allowed) by entry "--read-only api.example.com"; inspected`}},
		{[]string{"api.example.com", "--method", "DELETE", "--path", "/docs"}, exitDenied, []string{"deny DELETE api.example.com:443/docs (blocked-by-method)"}},
		{[]string{"api.example.com"}, 0, []string{"allow api.example.com:443 (allowed) by entry ", "; inspected: each request is decided by method and path"}},
		{[]string{"git.example.com", "--path", "/acme/tool/info/refs?service=git-upload-pack"}, 0, []string{"allow GET git.example.com:443/acme/tool/info/refs?service=git-upload-pack (allowed)"}},
		{[]string{"POST https://git.example.com/acme/tool/git-receive-pack"}, exitDenied, []string{"deny POST git.example.com:443/acme/tool/git-receive-pack (blocked-by-path)"}},
		{[]string{"http://api.example.com/form", "--method", "POST"}, exitDenied, []string{"deny POST api.example.com:80/form (blocked-by-method)"}},
		{[]string{"PUT https://cdn.example.com/anything"}, 0, []string{
			`allow PUT cdn.example.com:443/anything (allowed) by entry "cdn.example.com"; not inspected (no method/path rules for it): every method and path passes`}},
		{[]string{"cdn.example.com"}, 0, []string{`allow cdn.example.com:443 (allowed) by entry "cdn.example.com"; would dial 203.0.113.12`}},
		{[]string{"GET https://gone.example.invalid/"}, exitUnresolved, []string{`allowed by entry "--read-only gone.example.invalid", but gone.example.invalid does not resolve`}},
		{[]string{"POST https://gone.example.invalid/"}, exitDenied, []string{"deny POST gone.example.invalid:443/ (blocked-by-method)"}},
		{[]string{"GET https://evil.example.com/"}, exitDenied, []string{"deny evil.example.com:443 (not-allowed)"}},
		{[]string{"get https://api.example.com/"}, exitUsage, nil},
	}
	for _, tt := range tests {
		before := len(r.Lookups())
		code, out, errOut := runCLI(t, append(append([]string{"check"}, ro...), tt.args...)...)
		if code != tt.code {
			t.Errorf("check %q: exit %d, want %d\nstdout %q\nstderr %q", tt.args, code, tt.code, out, errOut)
		}
		for _, w := range tt.out {
			if !strings.Contains(out, w) {
				t.Errorf("check %q: stdout %q lacks %q", tt.args, out, w)
			}
		}
		if tt.code == exitDenied && strings.Contains(out, "blocked-by-") && len(r.Lookups()) != before {
			t.Errorf("check %q: a request refused by the rules was looked up", tt.args)
		}
	}
}

// FuzzParseCheckArgs: whatever the arguments, a request it accepts has an
// upper-case method token and a path from '/', and no request has
// neither.
func FuzzParseCheckArgs(f *testing.F) {
	for _, s := range []string{"POST https://api.example.com/x", "api.example.com", "GET", "https://h/a?b=c", "post h", " ", "A B C", "https://000?000"} {
		f.Add(s, "", "")
	}
	f.Add("api.example.com", "DELETE", "/x?y=1")
	f.Add("https://h/x", "", "/y")
	f.Fuzz(func(t *testing.T, arg, method, path string) {
		for _, args := range [][]string{{arg}, strings.SplitN(arg, " ", 2)} {
			req, err := parseCheckArgs(args, method, path)
			if err != nil {
				continue
			}
			if req.host == "" || req.port == 0 {
				t.Fatalf("parseCheckArgs(%q, %q, %q) = %+v", args, method, path, req)
			}
			if !req.request {
				if req.method != "" || req.path != "" {
					t.Fatalf("parseCheckArgs(%q, %q, %q) = %+v: no request, but a method or path", args, method, path, req)
				}
				continue
			}
			if checkMethodArg(req.method) != nil || !strings.HasPrefix(req.path, "/") {
				t.Fatalf("parseCheckArgs(%q, %q, %q) = %+v: bad method or path", args, method, path, req)
			}
		}
	})
}
