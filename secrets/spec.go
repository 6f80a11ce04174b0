// Package secrets keeps credentials out of the sandbox: CMD gets a random
// placeholder of the same shape as the real value in its environment, and
// the proxy puts the real value in its place only on requests to the hosts
// the secret is bound to.
//
// The package is pure: it parses the --secret flag ("NAME=PATTERN,…" or
// "NAME@FILE=PATTERN,…"), makes placeholders (from a random source it is
// given), and rewrites or refuses *http.Request values. Reading the
// environment and files is the caller's (Spec.Value takes both as
// arguments).
//
// What a Set rewrites on a request to a bound host: every request header
// value (including "Authorization: Basic", whose user:password is decoded,
// substituted and encoded again), the URL's userinfo and its query string.
// Request bodies, trailers and the URL path are never rewritten. On a
// request to a host the secret is not bound to, a placeholder found in a
// header name or value (also inside Basic credentials), the Host, the
// userinfo, the path or the query (raw or percent-decoded) makes Apply
// refuse the request with ErrNotBound. That detection is best effort (a
// placeholder in a body, or encoded some other way, is not seen); what
// does not depend on it is that the real value is only ever written into
// requests to bound hosts.
//
// Apply leaves responses alone. A bound host that echoes a request (an
// error page quoting the URL, a redirect keeping the query) would show CMD
// the real value; ConcealHeader and ConcealReader put the placeholders
// back into a response's header and body, and the proxy must use them on
// responses from bound hosts for the value to stay out of CMD's reach.
package secrets

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sandgate/sandgate/policy"
)

// Spec is one secret as the user named it: the environment variable CMD
// gets the placeholder in, where the real value comes from, and the hosts
// it may be sent to.
type Spec struct {
	// Name is the environment variable ("GITHUB_TOKEN").
	Name string
	// File is the file the real value is read from; "" means the
	// variable Name of sandgate's own environment.
	File string
	// Hosts are the policy host patterns the real value may be sent to.
	Hosts []policy.Entry
}

// String returns the spec in flag form ("NAME[@FILE]=PATTERN,…");
// ParseFlag of it gives the same spec.
func (sp Spec) String() string {
	var b strings.Builder
	b.WriteString(sp.Name)
	if sp.File != "" {
		b.WriteString("@" + sp.File)
	}
	b.WriteString("=")
	for i, h := range sp.Hosts {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(h.String())
	}
	return b.String()
}

// ParseFlag parses one --secret value: "NAME=PATTERN[,PATTERN…]" (the real
// value is sandgate's own $NAME) or "NAME@FILE=PATTERN[,PATTERN…]" (the
// real value is FILE's contents). FILE may contain '=' (the patterns
// follow the last one); it is returned as written. Errors name the flag
// value and say what form was expected.
func ParseFlag(s string) (Spec, error) {
	sp, err := parseFlag(s)
	if err != nil {
		return Spec{}, fmt.Errorf("invalid --secret %q: %w", s, err)
	}
	return sp, nil
}

func parseFlag(s string) (Spec, error) {
	const form = "write NAME=HOST[,HOST…] or NAME@FILE=HOST[,HOST…]"
	i := strings.IndexAny(s, "@=")
	if i < 0 {
		return Spec{}, fmt.Errorf("no '=' (%s)", form)
	}
	name, rest := s[:i], s[i:]
	var file, patterns string
	if p, ok := strings.CutPrefix(rest, "@"); ok {
		j := strings.LastIndexByte(p, '=')
		if j < 0 {
			return Spec{}, fmt.Errorf("no '=' after the file (%s)", form)
		}
		file, patterns = p[:j], p[j+1:]
		if file == "" {
			return Spec{}, fmt.Errorf("empty file after '@' (%s)", form)
		}
	} else {
		patterns = rest[1:]
	}
	return NewSpec(name, file, splitPatterns(patterns))
}

// splitPatterns splits a comma list, trimming spaces; an empty list gives
// one empty element so that NewSpec reports it.
func splitPatterns(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// NewSpec checks a secret given in parts (as the configuration file gives
// it): a valid variable name, at least one host pattern, each one a host
// entry of package policy (no methods or paths).
func NewSpec(name, file string, patterns []string) (Spec, error) {
	if err := CheckName(name); err != nil {
		return Spec{}, err
	}
	hosts, err := ParseHosts(patterns)
	if err != nil {
		return Spec{}, fmt.Errorf("secret %s: %w", name, err)
	}
	return Spec{Name: name, File: file, Hosts: hosts}, nil
}

// CheckName reports whether name can be an environment variable name:
// a letter or '_' then letters, digits and '_'.
func CheckName(name string) error {
	if name == "" {
		return errors.New("empty secret name (it is the environment variable CMD gets the placeholder in)")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return fmt.Errorf("secret name %q is not an environment variable name (letters, digits and '_', not starting with a digit)", name)
		}
	}
	return nil
}

// ParseHosts parses the host patterns a secret is bound to with
// policy.ParseEntry. Method/path rules are refused: a secret is bound to
// hosts (and optionally ports), not to requests.
func ParseHosts(patterns []string) ([]policy.Entry, error) {
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		return nil, errors.New("no host patterns (a secret must name the hosts its real value may be sent to)")
	}
	out := make([]policy.Entry, 0, len(patterns))
	for _, p := range patterns {
		if p == "" {
			return nil, errors.New("empty host pattern in the list")
		}
		e, err := policy.ParseEntry(p)
		if err != nil {
			return nil, fmt.Errorf("host pattern: %w", err)
		}
		if e.Methods != nil || e.Path != "" {
			return nil, fmt.Errorf("host pattern %q names methods or a path; a secret is bound to hosts (NAME, *.NAME, **.NAME, IP or CIDR, optional :PORT)", p)
		}
		out = append(out, e)
	}
	return out, nil
}

// Value returns the spec's real value: the last Name=… entry of env (as
// sandgate's own environment holds it), or, with File, the file's contents
// read through readFile, without surrounding white space (the newline a
// token file ends with). A missing variable or file, an empty value, and a
// value with characters that cannot be sent in an HTTP header are errors.
func (sp Spec) Value(env []string, readFile func(string) ([]byte, error)) (string, error) {
	var v string
	if sp.File != "" {
		b, err := readFile(sp.File)
		if err != nil {
			return "", fmt.Errorf("secret %s: reading its value: %w", sp.Name, err)
		}
		v = strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret %s: the file %s is empty", sp.Name, sp.File)
		}
	} else {
		found := false
		for i := len(env) - 1; i >= 0; i-- {
			if val, ok := strings.CutPrefix(env[i], sp.Name+"="); ok {
				v, found = val, true
				break
			}
		}
		if !found {
			return "", fmt.Errorf("secret %s: no variable %s in sandgate's environment (set it, or read the value from a file with --secret %s@FILE=…)", sp.Name, sp.Name, sp.Name)
		}
		if v == "" {
			return "", fmt.Errorf("secret %s: the variable %s is empty", sp.Name, sp.Name)
		}
	}
	if err := checkValue(v); err != nil {
		return "", fmt.Errorf("secret %s: %w", sp.Name, err)
	}
	return v, nil
}

// checkValue refuses values that cannot be put in an HTTP header as they
// are: control characters and non-ASCII bytes.
func checkValue(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f {
			return fmt.Errorf("the value has a byte 0x%02x at offset %d: only printable ASCII can be sent in a request header", c, i)
		}
	}
	return nil
}
