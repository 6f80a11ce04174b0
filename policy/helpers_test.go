package policy

import (
	"net/netip"
	"strconv"
)

// mustTarget parses a target or panics; for tables.
func mustTarget(host string, port uint16) Target {
	t, err := ParseTarget(host, port)
	if err != nil {
		panic(err)
	}
	return t
}

// addrs parses addresses; for tables.
func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// mustPolicy compiles a policy or panics; for tables.
func mustPolicy(c Config) *Policy {
	p, err := New(c)
	if err != nil {
		panic(err)
	}
	return p
}

// quoteGo quotes s as the package's error messages do.
func quoteGo(s string) string { return strconv.Quote(s) }
