package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// urlPorts are the default ports of the URL schemes an entry written by
// mistake as a URL is likely to carry.
var urlPorts = map[string]string{"http": "80", "ws": "80", "https": "443", "wss": "443"}

// splitRule splits an entry into its methods (nil when it has none), its
// host part and its path glob ("" when it has none). A URL given by mistake
// is refused with an error that says what to write instead.
func splitRule(s string) (methods []string, host, path string, err error) {
	host = s
	if m, rest, ok := strings.Cut(s, " "); ok {
		rest = strings.TrimLeft(rest, " ")
		if strings.Contains(rest, "://") && !strings.Contains(rest, " ") {
			return nil, "", "", urlRuleError(m, rest)
		}
		if methods, err = parseMethods(m); err != nil {
			return nil, "", "", err
		}
		if rest == "" {
			return nil, "", "", errors.New("methods without a host (write METHODS HOST[:PORT][/PATH])")
		}
		host = rest
		if strings.Contains(host, " ") {
			return nil, "", "", errors.New("too many spaces (write METHODS HOST[:PORT][/PATH], methods separated by commas only)")
		}
	}
	if strings.Contains(host, "://") {
		return nil, "", "", urlEntryError(host)
	}
	if i := pathStart(host); i >= 0 {
		if path, err = normalizeGlob(host[i:]); err != nil {
			return nil, "", "", err
		}
		host = host[:i]
	}
	if methods != nil && path == "" {
		path = "/**"
	}
	if path != "" && methods == nil {
		methods = []string{"*"}
	}
	return methods, host, path, nil
}

// pathStart returns the index of the '/' that starts the path of an entry's
// host part, or -1. A '/' right after an IP address followed by digits is
// a CIDR's prefix length, not a path.
func pathStart(s string) int {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return -1
		}
		if i := strings.IndexByte(s[end:], '/'); i >= 0 {
			return end + i
		}
		return -1
	}
	i := strings.IndexByte(s, '/')
	if i < 0 {
		return -1
	}
	if _, err := parseLiteral(s[:i]); err == nil {
		j := i + 1
		for j < len(s) && '0' <= s[j] && s[j] <= '9' {
			j++
		}
		if j > i+1 {
			if k := strings.IndexByte(s[j:], '/'); k >= 0 {
				return j + k
			}
			return -1
		}
	}
	return i
}

// urlEntryError explains that an entry is a URL and what to write instead.
func urlEntryError(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("%q is a URL; write only the host, optionally with :PORT", s)
	}
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	var suggest string
	if p := u.Port(); p != "" {
		suggest = host + ":" + p
	} else if p, ok := urlPorts[strings.ToLower(u.Scheme)]; ok {
		suggest = host + " (or " + host + ":" + p + ")"
	} else {
		suggest = host
	}
	msg := fmt.Sprintf("%q is a URL; write the host: %s", s, suggest)
	if p := u.EscapedPath(); p != "" && p != "/" {
		msg += "; a path rule is written " + strconv.Quote(host+p)
	}
	return errors.New(msg)
}

// urlRuleError explains that the host part of a rule "METHODS URL" is a
// URL, and names the rule to write instead.
func urlRuleError(methods, u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Hostname() == "" {
		return fmt.Errorf("%q is a URL; write METHODS HOST[:PORT][/PATH], e.g. %q", u, methods+" api.example.com/repos/**")
	}
	host := p.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := p.Port(); port != "" {
		host += ":" + port
	}
	path := p.EscapedPath()
	if path == "/" {
		path = ""
	}
	return fmt.Errorf("%q is a URL; write the host and path without the scheme: %q", u, methods+" "+host+path)
}

// knownMethods are the HTTP methods a rule may name: those of RFC 9110,
// PATCH, the WebDAV, versioning and calendar extensions registered with
// IANA, QUERY, and PURGE (caches). Any other name in a rule is far more
// likely a typing mistake than a method some server expects ("*" allows
// every method). Built on first use.
var knownMethods = sync.OnceValue(func() map[string]bool {
	known := map[string]bool{}
	for _, m := range strings.Fields(`GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH QUERY PURGE
		ACL BASELINE-CONTROL BIND CHECKIN CHECKOUT COPY LABEL LINK LOCK MERGE MKACTIVITY MKCALENDAR
		MKCOL MKREDIRECTREF MKWORKSPACE MOVE ORDERPATCH PROPFIND PROPPATCH REBIND REPORT SEARCH
		UNBIND UNCHECKOUT UNLINK UNLOCK UPDATE UPDATEREDIRECTREF VERSION-CONTROL`) {
		known[m] = true
	}
	return known
})

// closestMethod is the known method nearest to m by edit distance (at most
// two edits), or "".
func closestMethod(m string) string {
	best, bestD := "", 3
	for k := range knownMethods() {
		if d := editDistance(m, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// parseMethods parses a comma list of HTTP method tokens, or "*".
func parseMethods(s string) ([]string, error) {
	if s == "*" {
		return []string{"*"}, nil
	}
	var out []string
	for _, m := range strings.Split(s, ",") {
		if m == "" {
			return nil, fmt.Errorf("empty method in %q (write e.g. GET,HEAD or *)", s)
		}
		for i := 0; i < len(m); i++ {
			if !isTokenByte(m[i]) || m[i] == '*' {
				return nil, fmt.Errorf("method %q is not an HTTP method token (write e.g. GET,HEAD or *)", m)
			}
		}
		if strings.ToUpper(m) != m {
			return nil, fmt.Errorf("a space separates METHODS from the host, but %q is not an upper-case HTTP method (write e.g. GET,HEAD or *)", m)
		}
		if !knownMethods()[m] {
			hint := ""
			if c := closestMethod(m); c != "" {
				hint = fmt.Sprintf("did you mean %s? ", c)
			}
			return nil, fmt.Errorf("%q is not an HTTP method sandgate knows (%swrite e.g. GET,HEAD; * allows every method)", m, hint)
		}
		out = append(out, m)
	}
	return out, nil
}

// isTokenByte reports whether c may appear in an HTTP token (RFC 9110).
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// normalizeGlob checks a path glob and returns it in the normalised form
// request paths are compared in (see cleanPath): it starts with '/', "**"
// is only a whole segment, and it holds nothing cleanPath refuses, nor '?'.
func normalizeGlob(g string) (string, error) {
	if !strings.HasPrefix(g, "/") {
		return "", fmt.Errorf("path %q must start with '/'", g)
	}
	if strings.Contains(g, "?") {
		return "", fmt.Errorf("path %q holds '?'; a rule matches the path only (* one segment, ** any number)", g)
	}
	if i := strings.IndexAny(g, "[]{}"); i >= 0 {
		return "", fmt.Errorf("path %q holds %q: only * (within one segment) and ** (any number of segments) are wildcards; for a literal %q write %%%02X", g, g[i], g[i], g[i])
	}
	segs, _, bad := cleanPath(g)
	if bad != "" {
		return "", fmt.Errorf("path %q: %s", g, strings.TrimPrefix(bad, "the path "))
	}
	for _, seg := range segs {
		if strings.Contains(seg, "**") && seg != "**" {
			return "", fmt.Errorf("path %q: ** must be a whole segment", g)
		}
	}
	return "/" + strings.Join(segs, "/"), nil
}

// hasRule reports whether the entry carries methods or a path.
func (e Entry) hasRule() bool { return e.Methods != nil || e.Path != "" }

// methodMatches reports whether the entry allows method.
func (e Entry) methodMatches(method string) bool {
	for _, m := range e.Methods {
		if m == "*" || m == method {
			return true
		}
	}
	return false
}

// requestMatches reports whether the entry's path glob and query condition
// match the cleaned request path segments and raw query.
func (e Entry) requestMatches(segs []string, query string) bool {
	if !globMatch(strings.Split(e.Path[1:], "/"), segs) {
		return false
	}
	if e.query == "" {
		return true
	}
	want, wantVal, _ := strings.Cut(e.query, "=")
	q, err := url.ParseQuery(query)
	return err == nil && len(q[want]) == 1 && q[want][0] == wantVal
}

// globMatch matches glob segments against path segments: "**" matches any
// number of segments (none included), "*" within a segment any run of
// bytes of one non-empty segment.
func globMatch(glob, segs []string) bool {
	if len(glob) == 0 {
		return len(segs) == 0
	}
	if glob[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if globMatch(glob[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 || !segmentMatch(glob[0], segs[0]) {
		return false
	}
	return globMatch(glob[1:], segs[1:])
}

// segmentMatch matches one glob segment ('*' = any run of bytes) against
// one path segment; a '*' never matches an empty segment.
func segmentMatch(g, s string) bool {
	if !strings.Contains(g, "*") {
		return g == s
	}
	if s == "" {
		return false
	}
	parts := strings.Split(g, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// cleanPath checks and normalises a request path (escaped form, as sent,
// optionally with "?query") for matching. It returns the path's segments
// (after the leading '/'), the raw query, and, when the path is refused,
// why.
//
// Matching is done on the escaped form, never on a decoded one, because
// servers disagree on decoding: only escapes of unreserved characters
// (letters, digits, "-._~") are decoded, which every server treats as the
// same path, and other escapes are upper-cased. Refused outright, as
// tricks or ambiguity: "." and ".." segments (also as "%2e", or before a
// ';' parameter), escaped '/' or '\' ("%2f", "%5c"), escaped control bytes,
// a raw '\', control or non-ASCII bytes, a malformed escape, '#', and an
// empty segment inside the path ("//").
func cleanPath(p string) (segs []string, query, bad string) {
	p, query, _ = strings.Cut(p, "?")
	if p == "" {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") {
		return nil, "", "the path does not start with '/'"
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '\\' || c == '#' {
			return nil, "", fmt.Sprintf("the path holds %q", c)
		}
	}
	raw := strings.Split(p[1:], "/")
	segs = make([]string, len(raw))
	for i, seg := range raw {
		if seg == "" && i < len(raw)-1 {
			return nil, "", "the path has an empty segment (\"//\")"
		}
		n, why := normalizeSegment(seg)
		if why != "" {
			return nil, "", why
		}
		segs[i] = n
	}
	return segs, query, ""
}

// normalizeSegment decodes escapes of unreserved characters in one path
// segment and upper-cases the others; it says why when the segment is
// refused (see cleanPath).
func normalizeSegment(seg string) (string, string) {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(seg) || unhex(seg[i+1]) < 0 || unhex(seg[i+2]) < 0 {
			return "", "the path holds a malformed %-escape"
		}
		v := byte(unhex(seg[i+1])<<4 | unhex(seg[i+2]))
		i += 2
		switch {
		case v == '/' || v == '\\':
			return "", "the path holds an escaped '/' or '\\' (%2f, %5c)"
		case v < 0x20 || v == 0x7f:
			return "", "the path holds an escaped control byte"
		case 'a' <= v && v <= 'z', 'A' <= v && v <= 'Z', '0' <= v && v <= '9', strings.IndexByte("-._~", v) >= 0:
			b.WriteByte(v)
		default:
			fmt.Fprintf(&b, "%%%02X", v)
		}
	}
	n := b.String()
	if base, _, _ := strings.Cut(n, ";"); base == "." || base == ".." {
		return "", "the path holds a '.' or '..' segment"
	}
	return n, ""
}

// unhex is the value of a hex digit, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
