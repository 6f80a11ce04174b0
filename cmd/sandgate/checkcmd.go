package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

func newCheckCmd() *cobra.Command {
	var pf policyFlags
	var method, path string
	cmd := &cobra.Command{
		Use:   "check [flags] [METHOD] TARGET",
		Short: "Say whether the policy allows TARGET (a URL or HOST[:PORT]), or one request to it, and why",
		Long: `Decide TARGET exactly as the proxy would: the name is checked against the
deny and allow entries before any DNS lookup, an allowed name is resolved
once, and every address in a denied class is dropped. Nothing is dialled.

TARGET is a URL (https://example.com/x, port from the scheme when absent) or
HOST[:PORT] (port 443 when absent).

A URL, a METHOD or --method/--path also decide one request, as the proxy
decides each request to a host with method/path rules (--read-only,
--read-only-git, --allow 'METHODS HOST/PATH'): the method (GET when none is
given) and the URL's path and query, or --path. For example:

  sandgate check --read-only api.example.com 'POST https://api.example.com/x'
  sandgate check --read-only api.example.com POST https://api.example.com/x
  sandgate check --read-only-git 'github.com/acme/*' github.com --method GET --path '/acme/tool/info/refs?service=git-upload-pack'

A host without such rules is not inspected: every method and path passes
to it (its TLS stays end to end), and check says so.

Exit status: 0 allowed, 1 refused (the host, or the request by its method
or path), 3 allowed by an entry but the name does not resolve from here (so
a connection would fail with "resolve-failed").`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := parseCheckArgs(args, method, path)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			cf, pol, _, err := pf.load(false)
			if err != nil {
				return err
			}
			gate := newGate(cf, pol)
			if checkResolver != nil {
				gate.Resolver = checkResolver
			}
			return runCheck(cmd.OutOrStdout(), gate, pol, req)
		},
	}
	pf.register(cmd.Flags())
	cmd.Flags().StringVar(&method, "method", "", "decide a request with this HTTP method (upper case, as clients send it; GET when only --path is given)")
	cmd.Flags().StringVar(&path, "path", "", "decide a request for this path (from '/', with ?query when it matters, as sent)")
	return cmd
}

// checkRequest is what `sandgate check` decides: a host and port, and with
// request set one request to it.
type checkRequest struct {
	host         string
	port         uint16
	request      bool
	method, path string // path escaped, as sent, with "?query"
}

// runCheck decides req, prints the answer on out and returns the exit
// status as an error (nil: allowed).
func runCheck(out io.Writer, gate *egress.Gate, pol *policy.Policy, req checkRequest) error {
	var rd policy.Decision
	if req.request {
		rd = pol.CheckRequest(req.host, req.port, req.method, req.path)
		if rd.Reason == policy.ReasonBlockedByMethod || rd.Reason == policy.ReasonBlockedByPath {
			// Refused by the host's rules: no lookup needed.
			fmt.Fprintf(out, "deny %s %s%s (%s): %s\n", req.method, checkHostPort(req.host, req.port), req.path, rd.Reason, rd.Text)
			return &exitError{code: exitDenied}
		}
	}
	res := gate.Decide(context.Background(), req.host, req.port)
	d := res.Decision
	shown := res.Target.Host
	if shown == "" {
		shown = req.host
	}
	target := checkHostPort(shown, req.port)
	if d.Allow {
		addrs := make([]string, len(res.Addrs))
		for i, a := range res.Addrs {
			addrs[i] = a.String()
		}
		if req.request {
			fmt.Fprintf(out, "allow %s %s%s (%s)", req.method, target, req.path, rd.Reason)
			d.Entry = rd.Entry
		} else {
			fmt.Fprintf(out, "allow %s (%s)", target, d.Reason)
		}
		if d.Entry != "" {
			fmt.Fprintf(out, " by entry %q", d.Entry)
		}
		fmt.Fprint(out, inspectNote(pol, shown, req))
		if len(addrs) > 0 {
			fmt.Fprintf(out, "; would dial %s", strings.Join(addrs, ", "))
		}
		fmt.Fprintln(out)
		return nil
	}
	if d.Reason == policy.ReasonResolveFailed {
		if nd := pol.CheckTarget(res.Target); nd.Allow {
			entry := nd.Entry
			if req.request && rd.Entry != "" {
				entry = rd.Entry
			}
			fmt.Fprintln(out, unresolvedLine(entry, shown, d.Text))
			return &exitError{code: exitUnresolved}
		}
	}
	fmt.Fprintf(out, "deny %s (%s): %s\n", target, d.Reason, d.Text)
	return &exitError{code: exitDenied}
}

// inspectNote says, for an allowed target, whether its requests are
// decided one by one: "" for a plain host check of a host without rules.
func inspectNote(pol *policy.Policy, host string, req checkRequest) string {
	switch {
	case pol.Inspects(host, req.port) && !req.request:
		return "; inspected: each request is decided by method and path (give METHOD or --path to decide one)"
	case pol.Inspects(host, req.port):
		return "; inspected"
	case req.request:
		return "; not inspected (no method/path rules for it): every method and path passes, TLS end to end"
	}
	return ""
}

// checkHostPort is HOST:PORT, IPv6 literals in brackets.
func checkHostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// parseCheckArgs reads check's arguments: [METHOD] TARGET, or one
// argument "METHOD TARGET", with the --method and --path flags. A URL
// target, a method or a path make a request (GET and the URL's path, or
// "/", by default).
func parseCheckArgs(args []string, method, path string) (checkRequest, error) {
	var posMethod, target string
	switch {
	case len(args) == 2:
		posMethod, target = args[0], args[1]
	case len(args) == 1 && strings.ContainsAny(strings.TrimSpace(args[0]), " \t"):
		f := strings.Fields(args[0])
		if len(f) != 2 {
			return checkRequest{}, fmt.Errorf("invalid target %q: write [METHOD] TARGET, e.g. 'POST https://api.example.com/x'", args[0])
		}
		posMethod, target = f[0], f[1]
	case len(args) == 1:
		target = args[0]
	default:
		return checkRequest{}, fmt.Errorf("check takes [METHOD] TARGET, got %d arguments", len(args))
	}
	if posMethod != "" && method != "" && posMethod != method {
		return checkRequest{}, fmt.Errorf("the method is given twice (%q and --method %q): give it once", posMethod, method)
	}
	if method == "" {
		method = posMethod
	}
	host, port, err := parseCheckTarget(target)
	if err != nil {
		return checkRequest{}, err
	}
	req := checkRequest{host: host, port: port, method: method}
	urlPath := ""
	if strings.Contains(target, "://") {
		u, _ := url.Parse(target) // parsed by parseCheckTarget
		urlPath = u.EscapedPath()
		if urlPath == "" && u.RawQuery != "" {
			urlPath = "/" // https://host?q is a request for /?q
		}
		if u.RawQuery != "" {
			urlPath += "?" + u.RawQuery
		}
		req.request = true
	}
	if path != "" {
		if urlPath != "" && urlPath != "/" {
			return checkRequest{}, fmt.Errorf("the path is given twice (in %q and --path %q): give it once", target, path)
		}
		if err := checkPathArg(path); err != nil {
			return checkRequest{}, err
		}
		urlPath = path
	}
	if method != "" || path != "" {
		req.request = true
	}
	if !req.request {
		return req, nil
	}
	if req.method == "" {
		req.method = "GET"
	}
	if err := checkMethodArg(req.method); err != nil {
		return checkRequest{}, err
	}
	if urlPath == "" {
		urlPath = "/"
	}
	req.path = urlPath
	return req, nil
}

// checkMethodArg refuses a METHOD that is not an upper-case HTTP token:
// the proxy decides methods exactly as clients send them.
func checkMethodArg(m string) error {
	if m == "" {
		return errors.New("empty method: write an upper-case HTTP method (GET, POST, ...)")
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'+-.^_`|~", c) >= 0) {
			return fmt.Errorf("invalid method %q: write an upper-case HTTP method, as clients send it (GET, POST, ...)", m)
		}
	}
	return nil
}

// checkPathArg refuses a --path that a client could not send as it is.
func checkPathArg(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("invalid --path %q: a path starts with '/' (write \"/%s\", e.g. /repos/acme/x)", p, p)
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return fmt.Errorf("invalid --path %q: escape spaces, control and non-ASCII characters as a client sends them (%%20, ...)", p)
		}
	}
	return nil
}

// checkResolver replaces the system resolver of `sandgate check` in tests.
var checkResolver egress.Resolver

// unresolvedLine says that the policy allows name but the lookup failed;
// text is the gate's refusal text, "… could not be resolved: ERROR".
func unresolvedLine(entry, name, text string) string {
	why := text
	if _, after, ok := strings.Cut(text, "could not be resolved: "); ok {
		why = after
	}
	return fmt.Sprintf("allowed by entry %q, but %s does not resolve from here (%s)", entry, name, why)
}

// defaultPorts maps URL schemes to their usual ports.
var defaultPorts = map[string]uint16{"http": 80, "ws": 80, "https": 443, "wss": 443, "ssh": 22, "git": 9418, "ftp": 21}

// parseCheckTarget splits a URL or HOST[:PORT] into host and port.
func parseCheckTarget(s string) (string, uint16, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", 0, fmt.Errorf("invalid target URL %q: %w", s, err)
		}
		host := u.Hostname()
		if host == "" {
			return "", 0, fmt.Errorf("invalid target URL %q: no host", s)
		}
		if p := u.Port(); p != "" {
			port, err := parsePort(p)
			if err != nil {
				return "", 0, fmt.Errorf("invalid target URL %q: %w", s, err)
			}
			return host, port, nil
		}
		port, ok := defaultPorts[strings.ToLower(u.Scheme)]
		if !ok {
			return "", 0, fmt.Errorf("invalid target URL %q: no port and no default port for scheme %q", s, u.Scheme)
		}
		return host, port, nil
	}
	if host, p, err := net.SplitHostPort(s); err == nil {
		port, err := parsePort(p)
		if err != nil {
			return "", 0, fmt.Errorf("invalid target %q: %w", s, err)
		}
		if host == "" {
			return "", 0, fmt.Errorf("invalid target %q: no host", s)
		}
		return host, port, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if host == "" {
		return "", 0, fmt.Errorf("invalid target %q: no host", s)
	}
	return host, 443, nil
}

// parsePort parses a port of a command-line target (see policy.ParsePort)
// and says which ports there are when it is not one.
func parsePort(p string) (uint16, error) {
	n, err := policy.ParsePort(p)
	if err != nil {
		return 0, fmt.Errorf("%w (want 1-65535)", err)
	}
	return n, nil
}
