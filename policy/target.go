package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Target is a normalised request destination.
//
// For a literal, Addr holds the address with any IPv4-mapped IPv6 form
// unwrapped (a request for "[::ffff:203.0.113.10]" becomes 203.0.113.10) and
// Host holds that address's canonical string.
type Target struct {
	Host string     // normalised name, or the canonical IP string for literals
	Addr netip.Addr // valid when the request named an IP literal
	Port uint16
}

// IsIP reports whether the target names an IP literal.
func (t Target) IsIP() bool { return t.Addr.IsValid() }

// String returns host:port with IPv6 literals in brackets.
func (t Target) String() string { return hostPort(t.Host, t.Port) }

// ParseTarget normalises host (a name, an IPv4 literal, or an IPv6 literal
// with or without brackets) and port into a Target.
//
// IPv4 literals must be canonical dotted quads; every other numeric spelling
// ("127.1", "0x7f.0.0.1", "2130706433", "0177.0.0.1") is refused with an error
// wrapping ErrNumericName. IPv6 literals with a zone ("fe80::1%eth0"), IPv4
// literals in brackets, and port 0 are refused. Names go through
// NormalizeName. Errors name the input.
func ParseTarget(host string, port uint16) (Target, error) {
	t, err := parseTarget(host, port)
	if err != nil {
		return Target{}, fmt.Errorf("invalid target %q: %w", hostPort(host, port), err)
	}
	return t, nil
}

// parseTarget is ParseTarget without the input named in the error.
func parseTarget(host string, port uint16) (Target, error) {
	if port == 0 {
		return Target{}, errors.New("port 0")
	}
	if inner, ok := strings.CutPrefix(host, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok {
			return Target{}, errors.New("'[' without a closing ']'")
		}
		a, err := parseLiteral(inner)
		if err != nil {
			return Target{}, err
		}
		if !a.Is6() {
			return Target{}, errors.New("brackets around an IPv4 address")
		}
		return literalTarget(a, port), nil
	}
	if strings.ContainsAny(host, ":") {
		a, err := parseLiteral(host)
		if err != nil {
			return Target{}, err
		}
		return literalTarget(a, port), nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return literalTarget(a, port), nil
	}
	name, err := normalizeName(host)
	if err != nil {
		return Target{}, err
	}
	return Target{Host: name, Port: port}, nil
}

// parseLiteral parses an IP address literal, refusing zones.
func parseLiteral(s string) (netip.Addr, error) {
	if strings.Contains(s, "%") {
		return netip.Addr{}, errors.New("IPv6 zone ids are not allowed")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("not an IP address: %w", err)
	}
	return a, nil
}

// literalTarget builds the Target of an IP literal.
func literalTarget(a netip.Addr, port uint16) Target {
	a = a.Unmap()
	return Target{Host: a.String(), Addr: a, Port: port}
}
