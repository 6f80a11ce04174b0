package egress

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// StaticResolver is a Resolver answering from a fixed table, for tests and
// for `sandgate check` style dry runs. It records every lookup it receives,
// so a test can assert that a refused name never reached it.
type StaticResolver struct {
	// Hosts maps a lower-case name without a trailing dot to its addresses.
	Hosts map[string][]netip.Addr

	mu      sync.Mutex
	lookups []string
}

// LookupNetIP answers host (with or without a trailing dot) from Hosts.
// Network "ip4" or "ip6" keeps only that family. A name not in Hosts gives a
// *net.DNSError with IsNotFound set.
func (r *StaticResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	r.lookups = append(r.lookups, host)
	r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	var out []netip.Addr
	for _, a := range r.Hosts[name] {
		switch {
		case network == "ip4" && !a.Unmap().Is4(),
			network == "ip6" && !a.Is6():
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// Lookups returns the names looked up so far, in order, as received.
func (r *StaticResolver) Lookups() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lookups...)
}
