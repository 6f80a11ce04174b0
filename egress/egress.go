// Package egress turns a policy decision into a connection: it checks a
// requested host against the policy before any DNS lookup, resolves an
// allowed name exactly once, drops every address in a denied class, and dials
// only a surviving address.
package egress

// THIS FILE'S EXPORTED API IS AGREED. Implementations replace the panics.

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/sandgate/sandgate/policy"
)

// Resolver looks up a host name. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Gate decides and dials on behalf of the proxy servers and `sandgate check`.
type Gate struct {
	Policy      *policy.Policy
	Resolver    Resolver                                                          // nil means net.DefaultResolver
	LocalAddrs  func() []netip.Addr                                               // this host's interface addresses; nil means read them from the OS (cached briefly)
	DialTimeout time.Duration                                                     // 0 means 10s
	Dial        func(ctx context.Context, network, addr string) (net.Conn, error) // nil means net.Dialer; tests may override
}

// Result describes one decision of the gate.
type Result struct {
	Target   policy.Target   // the normalised target (zero if the host was invalid)
	Decision policy.Decision // the final decision
	Addrs    []netip.Addr    // addresses that survived filtering (for names), or the literal
}

// Decide runs the whole decision (normalise, check, resolve once, filter)
// without dialling. `sandgate check` prints its result.
func (g *Gate) Decide(ctx context.Context, host string, port uint16) Result { panic("todo") }

// Connect decides and, when allowed, dials the first surviving address that
// answers (trying the next only on a connection failure, never re-resolving).
// It returns the connection, the result, and the dialled address. A refusal
// returns a nil conn and a nil error with Result.Decision.Allow false; a dial
// failure after an allow returns a non-nil error.
func (g *Gate) Connect(ctx context.Context, host string, port uint16) (net.Conn, Result, netip.AddrPort, error) {
	panic("todo")
}
