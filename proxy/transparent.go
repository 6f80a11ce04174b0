package proxy

// The transparent path (issue 11): connections that nftables redirected to
// sandgate's transparent listener, from programs that may know nothing of
// the proxy. Each is decided by the same gate and recorded in the same
// audit pipeline as a CONNECT, then relayed by the same tunnel.

import (
	"context"
	"fmt"
	"github.com/sandgate/sandgate/decide"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/origdst"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/tlspeek"
)

// ProtoTransparent is the audit Event.Proto of transparent connections.
const ProtoTransparent = "transparent"

// Reason codes of transparent refusals besides the policy's own.
const (
	// ReasonUnknownSynthetic: the connection went to an address of the
	// run's synthetic range that stands for no name (never handed out by
	// the DNS stub, or recycled since).
	ReasonUnknownSynthetic = "unknown-synthetic-address"
)

// Defaults of TransparentOptions.
const (
	DefaultPeekTimeout = 2 * time.Second
	DefaultPeekMax     = tlspeek.DefaultMax
)

// SyntheticNames maps a run's synthetic addresses (those its DNS stub
// answers with) back to names.
type SyntheticNames interface {
	// Contains reports whether ip lies in the synthetic ranges, whether
	// or not it stands for a name now. Literal IP rules never apply to
	// such an address.
	Contains(ip netip.Addr) bool
	// Acquire returns the name ip stands for and, for a name from the
	// hosts file, the addresses to dial instead of resolving it (nil for
	// a name to resolve). The mapping is held until release is called
	// (release may be called more than once); ok is false when ip stands
	// for no name.
	Acquire(ip netip.Addr) (name string, hosts []netip.Addr, release func(), ok bool)
}

// TransparentOptions configure ServeTransparent.
type TransparentOptions struct {
	// OriginalDst returns where a redirected connection was going; nil
	// means origdst.Of (Linux).
	OriginalDst func(net.Conn) (netip.AddrPort, error)
	// Names maps synthetic addresses back to names; nil means the run
	// has no synthetic range.
	Names SyntheticNames
	// Peek lets a connection to an IP literal that no rule names be
	// decided by the name its first bytes give (a TLS ClientHello's
	// server name or an HTTP/1.x Host): the name must be allowed and
	// must resolve to that same address, which is then dialled. The
	// bytes read are sent upstream first.
	Peek bool
	// PeekTimeout bounds the wait for those bytes (protocols where the
	// server speaks first send nothing); 0 means DefaultPeekTimeout.
	PeekTimeout time.Duration
	// PeekMax bounds how many bytes are read; 0 means DefaultPeekMax.
	PeekMax int
}

func (o TransparentOptions) withDefaults() TransparentOptions {
	if o.OriginalDst == nil {
		o.OriginalDst = origdst.Of
	}
	if o.PeekTimeout <= 0 {
		o.PeekTimeout = DefaultPeekTimeout
	}
	if o.PeekMax <= 0 {
		o.PeekMax = DefaultPeekMax
	}
	return o
}

// ServeTransparent accepts redirected connections on ln until ln is closed
// or Shutdown is called; it returns nil after Shutdown. For each, it reads
// the original destination and decides on it:
//
//   - an address of the synthetic range: the name it stands for (held for
//     the connection's life), and its port, exactly as CONNECT name:port
//     (a hosts-file name is dialled at its hosts-file addresses, which pass
//     the same address-class check); an address that stands for no name
//     is refused;
//   - any other address: as CONNECT to that IP literal (IP rules, the
//     address-class check); with Peek, a literal no rule names may be
//     allowed by the name in its first bytes (see TransparentOptions).
//
// Allowed connections are dialled by the gate and relayed like a tunnel;
// refused ones are reset. Every decision is an audit event with Proto
// "transparent" and the same reasons and texts as proxied ones.
func (s *Server) ServeTransparent(ln net.Listener, opts TransparentOptions) error {
	opts = opts.withDefaults()
	return s.acceptLoop(ln, "transparent",
		func(c net.Conn) {
			s.logf("proxy: refusing transparent client %s: %d connections open (the limit)", c.RemoteAddr(), s.lim.MaxConns)
			reset(c)
		},
		func(cc *clientConn) { s.serveTransparent(cc, opts) })
}

// transparentConn is one redirected connection being decided.
type transparentConn struct {
	s      *Server
	opts   TransparentOptions
	cc     *clientConn
	client string
	start  time.Time
	dst    netip.AddrPort
	// initial holds bytes read from the client before the tunnel
	// (peeked), which go upstream first.
	initial []byte
	release func()       // ends the hold on a synthetic mapping
	dialer  *egress.Gate // the gate that allowed and dialled the connection
}

// serveTransparent decides one redirected connection and relays it.
func (s *Server) serveTransparent(cc *clientConn, opts TransparentOptions) {
	tc := &transparentConn{s: s, opts: opts, cc: cc, client: cc.RemoteAddr().String(), start: time.Now(), release: func() {}}
	handedOff := false
	defer func() {
		if v := recover(); v != nil {
			s.logf("proxy: internal error serving transparent client %s: %v", tc.client, v)
		}
		if !handedOff {
			tc.release()
			cc.Close()
		}
		s.untrack(cc)
	}()
	dst, err := opts.OriginalDst(cc.Conn)
	if err != nil {
		// No destination, so no decision to record.
		s.logf("proxy: transparent client %s: %v", tc.client, err)
		reset(cc.Conn)
		return
	}
	tc.dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	upstream, ev, ok := tc.decide()
	if !ok {
		reset(cc.Conn)
		s.record(ev, tc.start)
		return
	}
	if s.inspects(ev.Host, ev.Port) {
		if s.authority == nil {
			upstream.Close()
			reset(cc.Conn)
			s.record(inspectUnavailable(ev), tc.start)
			return
		}
		handedOff = true
		s.startInspection(cc.Conn, releaser{cc, tc.release}, upstream, tc.initial, ev, tc.start, tc.dialer)
		return
	}
	handedOff = true
	s.startTunnel(cc.Conn, releaser{cc, tc.release}, upstream, tc.initial, ev, tc.start)
}

// decide picks the target, decides and dials it. When ok is false, ev is
// the refusal or failure to record; otherwise the caller owns upstream and
// records ev when the tunnel ends.
func (tc *transparentConn) decide() (upstream net.Conn, ev audit.Event, ok bool) {
	ip, port := tc.dst.Addr(), tc.dst.Port()
	if tc.s.gate == nil {
		return nil, tc.refusal(ip.String(), port, policy.ReasonNotAllowed, "sandgate has no policy configured, so nothing is allowed"), false
	}
	if names := tc.opts.Names; names != nil && names.Contains(ip) {
		name, hosts, release, found := names.Acquire(ip)
		if !found {
			return nil, tc.refusal(ip.String(), port, ReasonUnknownSynthetic,
				fmt.Sprintf("%s is an address of this run's synthetic range that stands for no name (sandgate's DNS never gave it out, or has since reused it)", tc.dst)), false
		}
		if release != nil {
			tc.release = release
		}
		return tc.connect(tc.gate(hosts), name, port)
	}
	upstream, ev, ok = tc.connect(tc.gate(nil), ip.String(), port)
	if ok || !tc.opts.Peek || ev.Reason != policy.ReasonNotAllowed || ev.Decision != audit.DecisionDeny {
		return upstream, ev, ok
	}
	return tc.byPeekedName(ev)
}

// connect decides host:port with g and dials it; see decide.
func (tc *transparentConn) connect(g *egress.Gate, host string, port uint16) (net.Conn, audit.Event, bool) {
	tc.dialer = g
	upstream, res, dialed, err := g.Connect(decide.WithRequest(tc.s.baseCtx, ProtoTransparent, "", ""), host, port)
	ev := event(ProtoTransparent, tc.client, host, port, res, dialed)
	switch {
	case !res.Decision.Allow:
		if upstream != nil {
			upstream.Close()
		}
		return nil, ev, false
	case err != nil:
		ev.Reason = audit.ReasonDialFailed
		if isTimeout(err) {
			ev.Reason = audit.ReasonDialTimeout
		}
		ev.Text = fmt.Sprintf("connecting to %s failed: %v", net.JoinHostPort(host, fmt.Sprint(port)), err)
		return nil, ev, false
	}
	return upstream, ev, true
}

// byPeekedName decides a connection to an IP literal that no rule names by
// the name its first bytes give; literal is the literal's refusal, which
// stands when they give none. The name must be allowed and resolve
// (once) to the literal's address among the addresses that survive the
// class check, and then exactly that address is dialled: a name cannot
// lend its allowance to another address.
func (tc *transparentConn) byPeekedName(literal audit.Event) (net.Conn, audit.Event, bool) {
	c := tc.cc.Conn
	c.SetReadDeadline(time.Now().Add(tc.opts.PeekTimeout))
	peeked, read, _ := tlspeek.Peek(c, tc.opts.PeekMax)
	c.SetReadDeadline(time.Time{})
	tc.initial = read
	if peeked.Name == "" {
		return nil, literal, false
	}
	ip, port := tc.dst.Addr(), tc.dst.Port()
	what := fmt.Sprintf("the %s name %q", peeked.Kind, peeked.Name)
	res := tc.gate(nil).Decide(tc.s.baseCtx, peeked.Name, port)
	if !res.Decision.Allow {
		ev := literal
		ev.Reason = res.Decision.Reason
		ev.Text = fmt.Sprintf("%s is not on the allow list, and %s it gives is refused: %s", tc.dst, what, res.Decision.AuditText())
		return nil, ev, false
	}
	found := false
	for _, a := range res.Addrs {
		found = found || a == ip
	}
	if !found {
		ev := literal
		ev.Text = fmt.Sprintf("%s is not on the allow list, and %s it gives resolves to %s, not to %s", tc.dst, what, addrList(res.Addrs), ip)
		return nil, ev, false
	}
	// Dial the checked address itself; the name's allowance and the
	// address's class are checked again on the way, without a lookup.
	return tc.connect(tc.gate([]netip.Addr{ip}), res.Target.Host, port)
}

// gate is the server's gate, or with addrs a copy that takes addrs as the
// one answer of every lookup (a hosts-file name, or a name already
// resolved).
func (tc *transparentConn) gate(addrs []netip.Addr) *egress.Gate {
	g := tc.s.gate
	if g == nil || addrs == nil {
		return g
	}
	fixed := *g
	fixed.Resolver = fixedResolver(addrs)
	return &fixed
}

// refusal is a refusal event for host:port with reason and text.
func (tc *transparentConn) refusal(host string, port uint16, reason, text string) audit.Event {
	return audit.Event{
		Time: tc.start, Proto: ProtoTransparent, Client: tc.client, Host: host, Port: port,
		Decision: audit.DecisionDeny, Reason: reason, Text: text,
	}
}

// fixedResolver answers every lookup with its addresses.
type fixedResolver []netip.Addr

// LookupNetIP returns the addresses of the family asked for.
func (f fixedResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range f {
		if network == "ip" || (network == "ip4") == a.Unmap().Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no address of the family asked for", Name: host, IsNotFound: true}
	}
	return out, nil
}

// releaser closes the client (giving back its slot) and ends the hold on
// its synthetic mapping, once.
type releaser struct {
	cc      *clientConn
	release func()
}

func (r releaser) Close() error {
	err := r.cc.Close()
	r.release()
	return err
}

// reset closes c so that its peer sees a reset (ECONNRESET), as a refused
// connection should, rather than an orderly end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// addrList writes addresses as "a, b and c".
func addrList(addrs []netip.Addr) string {
	if len(addrs) == 0 {
		return "no address"
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
