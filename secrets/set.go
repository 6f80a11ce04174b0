package secrets

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"github.com/sandgate/sandgate/policy"
)

// ErrNotBound is wrapped by Apply's error (a *NotBoundError) when a
// request to a host carries the placeholder of a secret that is not bound
// to that host. The proxy answers such a request with 403 and
// "X-Proxy-Error: secret-not-bound".
var ErrNotBound = errors.New("a secret's placeholder in a request to a host the secret is not bound to")

// NotBoundError is Apply's refusal of a request: which secret's
// placeholder was where, on a request to which target. It never holds the
// placeholder or the value.
type NotBoundError struct {
	Name   string // the secret
	Where  string // the part of the request ("header X-Api-Key", "URL query")
	Target string // host:port of the request
	Bound  string // the secret's host patterns, comma-separated
}

func (e *NotBoundError) Error() string {
	return fmt.Sprintf("the placeholder of secret %s is in the %s of a request to %s, which the secret is not bound to (it is bound to %s)",
		e.Name, e.Where, e.Target, e.Bound)
}

// Unwrap makes errors.Is(err, ErrNotBound) true.
func (e *NotBoundError) Unwrap() error { return ErrNotBound }

// Binding is one secret with its real value, as New takes it.
type Binding struct {
	Name  string
	Value string
	Hosts []policy.Entry
}

// secret is one secret of a Set.
type secret struct {
	name        string
	value       string
	placeholder string
	queryValue  string // value as it is written in a query string
	hosts       []policy.Entry
	bits        float64
}

// Set is the secrets of one run. It is safe for concurrent use once made
// (no method changes it).
type Set struct {
	list     []secret
	toReal   *strings.Replacer // placeholders → real values
	toQuery  *strings.Replacer // placeholders → query-escaped real values
	conceal  *strings.Replacer // real values → placeholders
	redactor *strings.Replacer // real values and placeholders → "[secret:NAME]"
}

// Load reads each spec's real value (Spec.Value with env and readFile)
// and makes the run's Set with placeholders from crypto/rand.
func Load(specs []Spec, env []string, readFile func(string) ([]byte, error)) (*Set, error) {
	bs := make([]Binding, 0, len(specs))
	for _, sp := range specs {
		v, err := sp.Value(env, readFile)
		if err != nil {
			return nil, err
		}
		bs = append(bs, Binding{Name: sp.Name, Value: v, Hosts: sp.Hosts})
	}
	return New(rand.Reader, bs...)
}

// New makes a Set: one placeholder per secret, of the same shape as its
// value (see the package documentation), drawn from rnd. Every placeholder
// differs from every real value and every other placeholder, and none is
// inside another. Duplicate names, empty values, values that cannot be
// sent in a header, and values too short for a placeholder of MinBits are
// refused.
func New(rnd io.Reader, bs ...Binding) (*Set, error) {
	s := &Set{}
	seen := map[string]bool{}
	for _, b := range bs {
		if err := CheckName(b.Name); err != nil {
			return nil, err
		}
		if seen[b.Name] {
			return nil, fmt.Errorf("secret %s is given twice", b.Name)
		}
		seen[b.Name] = true
		if len(b.Hosts) == 0 {
			return nil, fmt.Errorf("secret %s: no hosts to bind it to", b.Name)
		}
		if b.Value == "" {
			return nil, fmt.Errorf("secret %s: empty value", b.Name)
		}
		if err := checkValue(b.Value); err != nil {
			return nil, fmt.Errorf("secret %s: %w", b.Name, err)
		}
		sh := shapeOf(b.Value)
		bits := sh.bits()
		if bits < MinBits {
			return nil, fmt.Errorf("secret %s: the value is too short for a safe placeholder (%.0f bits of randomness in its shape, at least %d needed): a placeholder that short could occur in other request text by chance", b.Name, bits, MinBits)
		}
		s.list = append(s.list, secret{name: b.Name, value: b.Value, queryValue: url.QueryEscape(b.Value),
			hosts: append([]policy.Entry(nil), b.Hosts...), bits: bits})
	}
	for i := range s.list {
		p, err := s.uniquePlaceholder(rnd, i)
		if err != nil {
			return nil, err
		}
		s.list[i].placeholder = p
	}
	s.buildReplacers()
	return s, nil
}

// uniquePlaceholder draws placeholders for secret i until one clashes with
// no value or placeholder of the set.
func (s *Set) uniquePlaceholder(rnd io.Reader, i int) (string, error) {
	sh := shapeOf(s.list[i].value)
	for range 64 {
		p, err := sh.generate(rnd)
		if err != nil {
			return "", fmt.Errorf("secret %s: %w", s.list[i].name, err)
		}
		if !s.clashes(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("secret %s: no placeholder found that differs from the other values (is the random source broken?)", s.list[i].name)
}

// clashes reports whether p equals, contains or is contained in any value
// or placeholder already in the set.
func (s *Set) clashes(p string) bool {
	overlap := func(a string) bool {
		return a != "" && (strings.Contains(a, p) || strings.Contains(p, a))
	}
	for _, x := range s.list {
		if overlap(x.value) || overlap(x.placeholder) {
			return true
		}
	}
	return false
}

func (s *Set) buildReplacers() {
	var real, query, redact, conceal []string
	for _, x := range s.list {
		real = append(real, x.placeholder, x.value)
		query = append(query, x.placeholder, x.queryValue)
	}
	byLen := append([]secret(nil), s.list...)
	sort.SliceStable(byLen, func(i, j int) bool { return len(byLen[i].value) > len(byLen[j].value) })
	for _, x := range byLen {
		conceal = append(conceal, x.value, x.placeholder)
	}
	type pair struct{ old, new string }
	var pairs []pair
	for _, x := range s.list {
		tag := "[secret:" + x.name + "]"
		pairs = append(pairs, pair{x.value, tag}, pair{x.placeholder, tag})
		if x.queryValue != x.value {
			pairs = append(pairs, pair{x.queryValue, tag})
		}
	}
	// At one position the first matching old string wins: longest first.
	sort.SliceStable(pairs, func(i, j int) bool { return len(pairs[i].old) > len(pairs[j].old) })
	for _, p := range pairs {
		redact = append(redact, p.old, p.new)
	}
	s.toReal = strings.NewReplacer(real...)
	s.toQuery = strings.NewReplacer(query...)
	s.redactor = strings.NewReplacer(redact...)
	s.conceal = strings.NewReplacer(conceal...)
}

// Len is the number of secrets.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.list)
}

// Names are the secrets' names, in the order they were given.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.list))
	for i, x := range s.list {
		out[i] = x.name
	}
	return out
}

// Hosts are the host patterns the secret name is bound to, as given (nil
// for a name the set does not hold).
func (s *Set) Hosts(name string) []policy.Entry {
	if s == nil {
		return nil
	}
	for _, x := range s.list {
		if x.name == name {
			return append([]policy.Entry(nil), x.hosts...)
		}
	}
	return nil
}

// Env is what CMD gets instead of the real values: one "NAME=placeholder"
// entry per secret, in the order they were given.
func (s *Set) Env() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.list))
	for i, x := range s.list {
		out[i] = x.name + "=" + x.placeholder
	}
	return out
}

// Notes are the warnings about the set for the user: one per secret whose
// placeholder has less than WantBits of randomness because its value is
// short. nil when there are none.
func (s *Set) Notes() []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, x := range s.list {
		if x.bits < WantBits {
			out = append(out, fmt.Sprintf("secret %s: its value is short, so its placeholder has %.0f bits of randomness, fewer than the %d sandgate aims for", x.name, x.bits, WantBits))
		}
	}
	return out
}

// Redact returns s with every real value (also as written in a query
// string) and every placeholder replaced by "[secret:NAME]", for logs and
// the audit.
func (s *Set) Redact(text string) string {
	if s == nil || len(s.list) == 0 {
		return text
	}
	return s.redactor.Replace(text)
}

// Conceal returns text with every real value replaced by its
// placeholder: what CMD may see of text that holds a real value (another
// variable of its environment, a response that echoes a request).
func (s *Set) Conceal(text string) string {
	if s == nil || len(s.list) == 0 {
		return text
	}
	return s.conceal.Replace(text)
}

// Binds reports whether any secret is bound to host and port (host as a
// request names it: a name or an IP literal, IPv6 with or without
// brackets). The proxy inspects such hosts so that Apply can run.
func (s *Set) Binds(host string, port uint16) bool {
	if s == nil {
		return false
	}
	t, err := policy.ParseTarget(host, port)
	if err != nil {
		return false
	}
	for _, x := range s.list {
		if x.bindsTo(t) {
			return true
		}
	}
	return false
}

func (x secret) bindsTo(t policy.Target) bool {
	for _, e := range x.hosts {
		if e.Matches(t) {
			return true
		}
	}
	return false
}

// boundTo says, per secret, whether it is bound to host and port (none
// when the target cannot be parsed).
func (s *Set) boundTo(host string, port uint16) []bool {
	out := make([]bool, len(s.list))
	t, err := policy.ParseTarget(host, port)
	if err != nil {
		return out
	}
	for i, x := range s.list {
		out[i] = x.bindsTo(t)
	}
	return out
}

// find returns the index of the first secret whose placeholder occurs in
// text, or -1.
func (s *Set) find(text string) int {
	for i, x := range s.list {
		if strings.Contains(text, x.placeholder) {
			return i
		}
	}
	return -1
}
