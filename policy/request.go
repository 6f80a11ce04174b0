package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Reason codes of request decisions (CheckRequest); they are also the
// X-Proxy-Error values of the refusals.
const (
	ReasonBlockedByMethod = "blocked-by-method" // a rule matches the path but not the method
	ReasonBlockedByPath   = "blocked-by-path"   // no rule for the host matches the path
)

// readOnlyMethods are the methods --read-only allows.
const readOnlyMethods = "GET,HEAD,OPTIONS"

// compileRequestRules adds the read-only, read-only git and inspect entries
// of c to p.
func (p *Policy) compileRequestRules(c Config) error {
	for _, s := range c.ReadOnly {
		e, err := parseReadOnly(s)
		if err != nil {
			return fmt.Errorf("invalid read-only entry %q: %w", s, err)
		}
		p.allow = append(p.allow, e)
	}
	for _, s := range c.ReadOnlyGit {
		es, err := parseReadOnlyGit(s)
		if err != nil {
			return fmt.Errorf("invalid read-only git entry %q: %w", s, err)
		}
		p.allow = append(p.allow, es...)
	}
	for _, s := range c.Inspect {
		e, err := parseEntry(s)
		if err == nil && e.hasRule() {
			err = errors.New("an inspect entry names a host only; narrow it with --allow 'METHODS HOST/PATH' or --read-only")
		}
		if err != nil {
			return fmt.Errorf("invalid inspect entry %q: %w", s, err)
		}
		p.inspect = append(p.inspect, e)
	}
	return nil
}

// parseReadOnly parses a --read-only PATTERN: HOST[:PORT][/PATH] allowing
// GET, HEAD and OPTIONS.
func parseReadOnly(s string) (Entry, error) {
	if strings.Contains(s, " ") {
		return Entry{}, errors.New("a read-only entry carries no methods (it allows " + readOnlyMethods + "); write HOST[:PORT][/PATH]")
	}
	if strings.Contains(s, "://") {
		return Entry{}, urlEntryError(s)
	}
	e, err := parseEntry(readOnlyMethods + " " + s)
	if err != nil {
		return Entry{}, err
	}
	e.Raw = "--read-only " + s
	return e, nil
}

// parseReadOnlyGit expands a --read-only-git HOST[:PORT][/REPO-GLOB] into
// the rules that let git clone and fetch over smart HTTP and nothing else:
// GET REPO/info/refs?service=git-upload-pack and POST REPO/git-upload-pack,
// for REPO with and without ".git". Push (git-receive-pack) matches none.
func parseReadOnlyGit(s string) ([]Entry, error) {
	if strings.Contains(s, " ") {
		return nil, errors.New("a read-only git entry carries no methods; write HOST[:PORT][/REPO-GLOB], e.g. github.com/acme/*")
	}
	base, err := parseEntry(s)
	if err != nil {
		return nil, err
	}
	repo := strings.TrimSuffix(strings.TrimSuffix(base.Path, "/"), ".git")
	if repo == "" {
		repo = "/**"
	}
	host := s
	if i := pathStart(s); i >= 0 {
		host = s[:i]
	}
	raw := "--read-only-git " + s
	var out []Entry
	for _, r := range []string{repo, repo + ".git"} {
		for _, rule := range []struct{ method, suffix, query string }{
			{"GET", "/info/refs", "service=git-upload-pack"},
			{"POST", "/git-upload-pack", ""},
		} {
			e, err := parseEntry(rule.method + " " + host + r + rule.suffix)
			if err != nil {
				return nil, err
			}
			e.Raw, e.query = raw, rule.query
			out = append(out, e)
		}
		if strings.HasSuffix(r, "*") {
			break // "*" already matches the name with ".git"
		}
	}
	return out, nil
}

// Inspects reports whether requests to host:port are decided one by one:
// some allow entry for it carries methods or a path, or an inspect entry
// names it. host is normalised as ParseTarget does; an invalid host is not
// inspected (the connection is refused before any request). A nil Policy
// inspects nothing.
func (p *Policy) Inspects(host string, port uint16) bool {
	if p == nil {
		return false
	}
	t, err := ParseTarget(host, port)
	if err != nil {
		return false
	}
	for _, e := range p.allow {
		if e.hasRule() && e.Matches(t) {
			return true
		}
	}
	for _, e := range p.inspect {
		if e.Matches(t) {
			return true
		}
	}
	return false
}

// CheckRequest decides one request to host:port. path is the request
// target's path in escaped form, as sent, optionally followed by "?query"
// (see cleanPath for how it is checked and compared).
//
// The host is first decided as CheckTarget does (deny entries win, then
// the allow list). When no allow entry for the host carries methods or a
// path (a host only inspected, or not inspected at all) that decides.
// Otherwise only those rules decide: the request is allowed when one of
// them matches its method and path; else refused with reason
// "blocked-by-method" (a rule matches the path but not the method) or
// "blocked-by-path", and a Text that names the request and the rules that
// would allow requests there.
func (p *Policy) CheckRequest(host string, port uint16, method, path string) Decision {
	t, err := ParseTarget(host, port)
	if err != nil {
		return InvalidTargetDecision(host, port, err)
	}
	d := p.CheckTarget(t)
	if !d.Allow {
		return d
	}
	var rules []Entry
	for _, e := range p.allow {
		if e.hasRule() && e.Matches(t) {
			rules = append(rules, e)
		}
	}
	if len(rules) == 0 {
		return d
	}
	shown, _, _ := strings.Cut(path, "?")
	req := method + " " + requestHost(t) + shown
	for _, e := range rules {
		if e.query != "" {
			// A rule decides by the query too (git's service=): show it.
			req = method + " " + requestHost(t) + path
			break
		}
	}
	segs, query, bad := cleanPath(path)
	if bad != "" {
		return Decision{Block: BlockPath, Reason: ReasonBlockedByPath,
			Text: req + " is refused: " + bad}
	}
	var methodMiss []Entry
	for _, e := range rules {
		if !e.requestMatches(segs, query) {
			continue
		}
		if e.methodMatches(method) {
			return Decision{Allow: true, Reason: ReasonAllowed, Entry: e.Raw,
				Text: req + " is allowed by allow entry " + strconv.Quote(e.Raw)}
		}
		methodMiss = append(methodMiss, e)
	}
	if len(methodMiss) > 0 {
		return Decision{Block: BlockMethod, Reason: ReasonBlockedByMethod, Entry: methodMiss[0].Raw,
			Text: req + " is not allowed; allowed there: " + ruleList(methodMiss) + allowSuggestion(method, t, shown)}
	}
	return Decision{Block: BlockPath, Reason: ReasonBlockedByPath, Entry: rules[0].Raw,
		Text: req + " is not allowed; allowed there: " + ruleList(rules) + allowSuggestion(method, t, shown)}
}

// allowSuggestion names the rule that would allow exactly method on t and
// path (escaped, without the query), as "; to allow it, add --allow
// '...'", or "" when no such rule can be written (a path holding a quote or
// a '*', or a rule that would not parse).
func allowSuggestion(method string, t Target, path string) string {
	host := t.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	rule := method + " " + host + ":" + strconv.Itoa(int(t.Port)) + path
	if strings.ContainsAny(path, "'*") {
		return ""
	}
	if _, err := parseEntry(rule); err != nil {
		return ""
	}
	return "; to allow it, add --allow '" + rule + "'"
}

// requestHost is the host of a request as a Text shows it: the port only
// when it is not 80 or 443.
func requestHost(t Target) string {
	if t.Port == 80 || t.Port == 443 {
		if strings.Contains(t.Host, ":") {
			return "[" + t.Host + "]"
		}
		return t.Host
	}
	return t.String()
}

// ruleList names the distinct raw entries of rules, at most four.
func ruleList(rules []Entry) string {
	var out []string
	for _, e := range rules {
		dup := false
		for _, o := range out {
			dup = dup || o == e.Raw
		}
		if !dup {
			out = append(out, e.Raw)
		}
	}
	if len(out) > 4 {
		out = append(out[:4], fmt.Sprintf("and %d more", len(out)-4))
	}
	return strings.Join(out, "; ")
}

// InspectsAny reports whether some host is inspected: an allow entry
// carries methods or a path, or there is an inspect entry. A run then
// needs a certificate authority. A nil Policy inspects nothing.
func (p *Policy) InspectsAny() bool {
	if p == nil {
		return false
	}
	for _, e := range p.allow {
		if e.hasRule() {
			return true
		}
	}
	return len(p.inspect) > 0
}
