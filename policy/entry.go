package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Kind says what a policy Entry matches.
type Kind int

const (
	// KindExact matches exactly one host name ("example.com").
	KindExact Kind = iota + 1
	// KindSubdomains matches any subdomain but not the apex ("*.example.com").
	KindSubdomains
	// KindApexAndSubdomains matches the apex and every subdomain ("**.example.com").
	KindApexAndSubdomains
	// KindPrefix matches an IP address or CIDR ("203.0.113.10", "198.51.100.0/24", "[2001:db8::1]:443").
	KindPrefix
)

// String names the kind ("exact", "subdomains", "apex-and-subdomains", "prefix").
func (k Kind) String() string {
	switch k {
	case KindExact:
		return "exact"
	case KindSubdomains:
		return "subdomains"
	case KindApexAndSubdomains:
		return "apex-and-subdomains"
	case KindPrefix:
		return "prefix"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Entry is one parsed allow or deny entry.
type Entry struct {
	Raw    string       // the entry as the user wrote it
	Kind   Kind         // what it matches
	Name   string       // normalised name (for name kinds): "example.com"
	Prefix netip.Prefix // for KindPrefix; a single address is a /32 or /128
	Port   uint16       // 0 means any port

	// Methods are the HTTP methods a method/path rule allows (upper case,
	// or the one element "*" for any); nil for a host-only entry.
	Methods []string
	// Path is the normalised path glob of a method/path rule ("/**" when
	// the rule names only methods); "" for a host-only entry.
	Path string
	// query is a condition on the request's query, "name=value", used
	// only by the rules the read-only git shortcut makes.
	query string
}

// ParseEntry parses one allow/deny entry; errors name the entry.
//
// An entry may also be a method/path rule: "[METHODS ]HOST[:PORT][/PATH]",
// where METHODS is a comma list of HTTP method tokens or "*" (any), and
// PATH a glob starting with '/' in which a segment "*" matches one segment
// (a '*' inside a segment any run of characters of it) and a segment "**"
// any number of segments, none included (so "/x/**" also matches "/x").
// Methods without a path mean the path "/**"; a path without methods means
// any method. A URL given by mistake ("https://example.com/") is refused
// with an error that says what to write. The host part takes the forms:
//
// Accepted forms, each with an optional ":port" suffix (1–65535; without it
// the entry matches any port):
//
//	example.com          exactly that name
//	*.example.com        any subdomain, not the apex
//	**.example.com       the apex and any subdomain
//	203.0.113.10         one IPv4 address (a /32)
//	198.51.100.0/24      an IPv4 CIDR (host bits must be zero)
//	2001:db8::1          one IPv6 address; no port possible without brackets
//	2001:db8::/32        an IPv6 CIDR; no port possible without brackets
//	[2001:db8::1]:443    a bracketed IPv6 address, port optional
//	[2001:db8::/32]:443  a bracketed IPv6 CIDR, port optional
//
// Names are normalised with NormalizeName. A wildcard must be the whole
// leftmost label; a bare "*" or "**" and a wildcard whose base is a public
// suffix (the ICANN section of the Public Suffix List, such as "com" or
// "co.uk", or any single label, which covers unlisted top-level domains) are
// refused. Suffixes of the list's private section ("githubusercontent.com",
// "github.io") are accepted: they name one operator's domain, and allowing
// every name under it is an explicit, visible choice of the user. IPv4-mapped IPv6 addresses and prefixes (at least /96) are stored
// as IPv4. Zones are refused.
func ParseEntry(s string) (Entry, error) {
	e, err := parseEntry(s)
	if err != nil {
		return Entry{}, fmt.Errorf("invalid entry %q: %w", s, err)
	}
	return e, nil
}

// parseEntry is ParseEntry without the entry named in the error.
func parseEntry(s string) (Entry, error) {
	if s == "" {
		return Entry{}, errors.New("empty entry")
	}
	methods, host, path, err := splitRule(s)
	if err != nil {
		return Entry{}, err
	}
	if host == "" {
		return Entry{}, errors.New("no host (write [METHODS ]HOST[:PORT][/PATH])")
	}
	e, err := parseHostEntry(host)
	if err != nil {
		return Entry{}, err
	}
	e.Raw, e.Methods, e.Path = s, methods, path
	return e, nil
}

// parseHostEntry parses the host part of an entry: a name or address with
// an optional port.
func parseHostEntry(s string) (Entry, error) {
	e := Entry{Raw: s}
	host := s
	if inner, ok := strings.CutPrefix(s, "["); ok {
		end := strings.IndexByte(inner, ']')
		if end < 0 {
			return Entry{}, errors.New("'[' without a closing ']'")
		}
		rest := inner[end+1:]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return Entry{}, fmt.Errorf("unexpected %q after ']'", rest)
			}
			port, err := entryPort(p)
			if err != nil {
				return Entry{}, err
			}
			e.Port = port
		}
		pfx, err := parsePrefix(inner[:end])
		if err != nil {
			return Entry{}, err
		}
		if !pfx.Addr().Is6() && !strings.Contains(inner[:end], ":") {
			return Entry{}, errors.New("brackets are only for IPv6")
		}
		e.Kind, e.Prefix = KindPrefix, pfx
		return e, nil
	}
	switch strings.Count(s, ":") {
	case 0:
	case 1:
		h, p, _ := strings.Cut(s, ":")
		port, err := entryPort(p)
		if err != nil {
			return Entry{}, err
		}
		host, e.Port = h, port
	default:
		// An unbracketed IPv6 address or CIDR: no port.
		pfx, err := parsePrefix(s)
		if err != nil {
			if i := strings.LastIndexByte(s, ':'); allDigits(s[i+1:]) {
				if _, err2 := parsePrefix(s[:i]); err2 == nil {
					return Entry{}, fmt.Errorf("%w (write an IPv6 entry with a port as [address]:port)", err)
				}
			}
			return Entry{}, err
		}
		e.Kind, e.Prefix = KindPrefix, pfx
		return e, nil
	}
	if host == "" {
		return Entry{}, errors.New("empty host")
	}
	if looksLikeIPv4(host) {
		pfx, err := parsePrefix(host)
		if err != nil {
			return Entry{}, err
		}
		e.Kind, e.Prefix = KindPrefix, pfx
		return e, nil
	}
	kind, base := KindExact, host
	if b, ok := strings.CutPrefix(host, "**."); ok {
		kind, base = KindApexAndSubdomains, b
	} else if b, ok := strings.CutPrefix(host, "*."); ok {
		kind, base = KindSubdomains, b
	} else if host == "*" || host == "**" {
		return Entry{}, errors.New("a bare wildcard would match every name")
	}
	if strings.Contains(base, "*") {
		return Entry{}, errors.New("a wildcard is allowed only as the whole leftmost label (\"*.\" or \"**.\")")
	}
	name, err := normalizeName(base)
	if err != nil {
		return Entry{}, err
	}
	if kind != KindExact {
		if ps, icann := publicsuffix.PublicSuffix(name); ps == name && (icann || !strings.Contains(name, ".")) {
			return Entry{}, fmt.Errorf("wildcard over a public suffix (%q)", name)
		}
	}
	e.Kind, e.Name = kind, name
	return e, nil
}

// looksLikeIPv4 reports whether s (an entry host without port) is meant as an
// IPv4 address or CIDR: a '/' or a canonical dotted quad. Other numeric
// spellings fall through to name parsing and are refused there as numeric
// names.
func looksLikeIPv4(s string) bool {
	if strings.Contains(s, "/") {
		return true
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// parsePrefix parses an address or a CIDR into a prefix. A single address
// becomes a /32 or /128. Host bits must be zero, zones are refused, and
// IPv4-mapped forms become IPv4.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, errors.New("IPv6 zone ids are not allowed")
	}
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP prefix: %w", err)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("prefix has bits set after the first %d (did you mean %s?)", p.Bits(), p.Masked())
		}
		pfx = p
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP address: %w", err)
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
		pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
	}
	return pfx, nil
}

// entryPort parses the port of an entry (see ParsePort), in the words
// entry errors have always used.
func entryPort(s string) (uint16, error) {
	p, err := ParsePort(s)
	if err != nil {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return p, nil
}

// String returns the entry in canonical form; ParseEntry of the result gives
// the same Kind, Name, Prefix and Port.
func (e Entry) String() string {
	var host string
	switch e.Kind {
	case KindExact:
		host = e.Name
	case KindSubdomains:
		host = "*." + e.Name
	case KindApexAndSubdomains:
		host = "**." + e.Name
	case KindPrefix:
		if e.Prefix.IsSingleIP() {
			host = e.Prefix.Addr().String()
		} else {
			host = e.Prefix.String()
		}
		if e.hasRule() {
			// Always with the length, so that a path cannot read as one.
			host = e.Prefix.String()
		}
		if e.Prefix.Addr().Is6() && (e.Port != 0 || e.hasRule()) {
			host = "[" + host + "]"
		}
	default:
		return e.Raw
	}
	if e.Port != 0 {
		host += ":" + strconv.Itoa(int(e.Port))
	}
	if e.hasRule() {
		return strings.Join(e.Methods, ",") + " " + host + e.Path
	}
	return host
}

// Matches reports whether the entry matches target t: a name entry matches
// only name targets, a prefix entry only IP-literal targets, and an entry with
// a port only that port.
func (e Entry) Matches(t Target) bool {
	if !e.portMatches(t.Port) {
		return false
	}
	if t.IsIP() {
		return e.Kind == KindPrefix && e.Prefix.Contains(t.Addr.Unmap())
	}
	return e.matchesName(t.Host)
}

// portMatches reports whether the entry allows port.
func (e Entry) portMatches(port uint16) bool { return e.Port == 0 || e.Port == port }

// matchesName reports whether a name entry matches the normalised name.
func (e Entry) matchesName(name string) bool {
	switch e.Kind {
	case KindExact:
		return name == e.Name
	case KindSubdomains:
		return isSubdomain(name, e.Name)
	case KindApexAndSubdomains:
		return name == e.Name || isSubdomain(name, e.Name)
	}
	return false
}

// isSubdomain reports whether name is a proper subdomain of base, label-wise:
// "a.example.com" is, "evilexample.com" is not.
func isSubdomain(name, base string) bool {
	return len(name) > len(base)+1 && strings.HasSuffix(name, base) && name[len(name)-len(base)-1] == '.'
}
