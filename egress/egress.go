// Package egress turns a policy decision into a connection: it checks a
// requested host against the policy before any DNS lookup, resolves an
// allowed name exactly once, drops every address in a denied class, and dials
// only a surviving address.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sandgate/sandgate/policy"
)

// DefaultDialTimeout bounds one resolution and each connection attempt when
// Gate.DialTimeout is zero.
const DefaultDialTimeout = 10 * time.Second

// Resolver looks up a host name. *net.Resolver satisfies it.
//
// The Gate always passes network "ip" and a fully qualified name with a
// trailing dot ("example.com."), so that no resolv.conf search domain is
// appended to a name the policy checked without it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Gate decides and dials on behalf of the proxy servers and `sandgate check`.
// A Gate is safe for concurrent use once its fields are set.
type Gate struct {
	Policy      *policy.Policy
	Resolver    Resolver                                                          // nil means net.DefaultResolver
	LocalAddrs  func() []netip.Addr                                               // this host's interface addresses; nil means read them from the OS (cached briefly)
	DialTimeout time.Duration                                                     // 0 means 10s
	Dial        func(ctx context.Context, network, addr string) (net.Conn, error) // nil means net.Dialer; tests may override
	Upstream    *Upstream                                                         // nil means connect directly; see upstream.go
	Live        *Live                                                             // when set, the policy in force (Policy is then unused)
	Ask         *Asker                                                            // when set, destinations merely not on the allow list are put to its Decider
}

// Result describes one decision of the gate.
type Result struct {
	Target   policy.Target   // the normalised target (zero if the host was invalid)
	Decision policy.Decision // the final decision
	Addrs    []netip.Addr    // addresses that survived filtering (for names), or the literal
	Gen      uint64          // the generation of the Live policy that decided (0 without Live)
}

// Decide runs the whole decision (normalise, check, resolve once, filter)
// without dialling. `sandgate check` prints its result.
//
// A nil Policy refuses everything. A failed lookup is a refusal with reason
// policy.ReasonResolveFailed, not an error. When the OS interface addresses
// cannot be read, names and literals are refused as
// "address-class:local-address" (fail closed).
func (g *Gate) Decide(ctx context.Context, host string, port uint16) Result {
	t, err := policy.ParseTarget(host, port)
	if err != nil {
		return Result{Decision: policy.InvalidTargetDecision(host, port, err)}
	}
	res := Result{Target: t}
	pol := g.Policy
	if g.Live != nil {
		pol, res.Gen = g.Live.Current()
	}
	if pol == nil {
		res.Decision = policy.Decision{Block: policy.BlockAllowlist, Reason: policy.ReasonNotAllowed,
			Text: t.String() + " is refused: no policy is configured"}
		return res
	}
	// The name is judged before anything can reach a resolver.
	res.Decision = pol.CheckTarget(t)
	var asked *policy.Decision
	if !res.Decision.Allow && res.Decision.Reason == policy.ReasonNotAllowed && g.Ask != nil {
		pol, res.Decision, res.Gen = g.Ask.ask(ctx, g.Live, pol, t, res.Gen)
		asked = &res.Decision
	}
	if !res.Decision.Allow {
		return res
	}
	var addrs []netip.Addr
	if t.IsIP() {
		addrs = []netip.Addr{t.Addr}
	} else {
		addrs, err = g.resolve(ctx, t.Host)
		if err != nil {
			res.Decision = policy.Decision{Block: policy.BlockAddress, Reason: policy.ReasonResolveFailed,
				Text: t.String() + " could not be resolved: " + oneLine(err.Error())}
			return res
		}
	}
	local, err := g.localAddrs()
	if err != nil {
		res.Decision = policy.Decision{Block: policy.BlockAddress,
			Reason: policy.ReasonClassPrefix + policy.ClassLocalAddress,
			Text:   t.String() + " is refused: this host's own addresses could not be read: " + oneLine(err.Error())}
		return res
	}
	allow := res.Decision
	res.Addrs, res.Decision = pol.FilterResolved(t, addrs, local)
	if asked != nil && res.Decision.Allow {
		res.Decision = allow // keep the decider's words
	}
	return res
}

// Connect decides and, when allowed, dials the first surviving address that
// answers (trying the next only on a connection failure, never re-resolving).
// It returns the connection, the result, and the dialled address. A refusal
// returns a nil conn and a nil error with Result.Decision.Allow false; a dial
// failure after an allow returns a non-nil error.
//
// With a nil Dial the connection is TCP from a net.Dialer, so its dynamic
// type is *net.TCPConn. Each attempt is bounded by DialTimeout.
func (g *Gate) Connect(ctx context.Context, host string, port uint16) (net.Conn, Result, netip.AddrPort, error) {
	if g.viaUpstream(host, port) && g.Upstream.Send == SendName {
		return g.connectByName(ctx, host, port)
	}
	res := g.Decide(ctx, host, port)
	if !res.Decision.Allow {
		return nil, res, netip.AddrPort{}, nil
	}
	if len(res.Addrs) == 0 {
		// FilterResolved never allows without an address; refuse if it did.
		res.Decision = policy.Decision{Block: policy.BlockAddress, Reason: policy.ReasonNoAddress,
			Text: res.Target.String() + " has no address to dial"}
		return nil, res, netip.AddrPort{}, nil
	}
	var errs []error
	for _, a := range res.Addrs {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		ap := netip.AddrPortFrom(a, res.Target.Port)
		conn, err := g.dialOne(ctx, res.Target.Host, ap)
		if err == nil {
			return conn, res, ap, nil
		}
		errs = append(errs, err)
	}
	return nil, res, netip.AddrPort{}, fmt.Errorf("connect to %s: %w", res.Target, errors.Join(errs...))
}

// dialOne makes one connection attempt to ap, the checked address of host:
// directly, or through the upstream (SendAddress) unless host bypasses it.
func (g *Gate) dialOne(ctx context.Context, host string, ap netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	if g.viaUpstream(host, ap.Port()) {
		return g.Upstream.dial(ctx, g.dialer(), ap.Addr().String(), ap.Port())
	}
	conn, err := g.dialer()(ctx, "tcp", ap.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", ap, err)
	}
	return conn, nil
}

// resolve looks name up once, as a rooted name, bounded by DialTimeout.
func (g *Gate) resolve(ctx context.Context, name string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	var r Resolver = net.DefaultResolver
	if g.Resolver != nil {
		r = g.Resolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", name+".")
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	return addrs, nil
}

// timeout returns the dial and lookup bound.
func (g *Gate) timeout() time.Duration {
	if g.DialTimeout > 0 {
		return g.DialTimeout
	}
	return DefaultDialTimeout
}

// localAddrs returns this host's interface addresses.
func (g *Gate) localAddrs() ([]netip.Addr, error) {
	if g.LocalAddrs != nil {
		return g.LocalAddrs(), nil
	}
	return osLocalAddrs.get()
}

// oneLine makes s safe for a one-line Text: control characters are escaped.
func oneLine(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
