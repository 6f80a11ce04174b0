package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/policy"
)

// recordingDialer is a Dial that records every address and fails for those
// listed in fail.
type recordingDialer struct {
	mu        sync.Mutex
	calls     []string
	networks  []string
	fail      map[string]bool
	deadlines []time.Duration
}

func (d *recordingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, addr)
	d.networks = append(d.networks, network)
	if dl, ok := ctx.Deadline(); ok {
		d.deadlines = append(d.deadlines, time.Until(dl))
	}
	if d.fail[addr] {
		return nil, errors.New("connection refused (fake)")
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

func mustPolicy(t *testing.T, c policy.Config) *policy.Policy {
	t.Helper()
	p, err := policy.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

var testHosts = map[string][]netip.Addr{
	"www.example.com":      addrs("203.0.113.10", "2001:db8::10"),
	"loop.example.com":     addrs("127.0.0.1"),
	"loop6.example.com":    addrs("::1"),
	"ll.example.com":       addrs("169.254.10.10", "fe80::1"),
	"meta.example.com":     addrs("169.254.169.254"),
	"meta6.example.com":    addrs("::ffff:a9fe:a9fe", "fd00:ec2::254"),
	"nat64.example.com":    addrs("64:ff9b::7f00:1"),
	"self.example.com":     addrs("192.0.2.5"),
	"private.example.com":  addrs("10.1.2.3"),
	"mixed.example.com":    addrs("127.0.0.1", "203.0.113.20", "169.254.169.254", "203.0.113.21", "192.0.2.5", "2001:db8::21"),
	"denied.example.com":   addrs("203.0.113.99"),
	"notlisted.test":       addrs("203.0.113.50"),
	"bad-addr.example.com": addrs("203.0.113.66"),
	"empty.example.com":    nil,
}

func newGate(t *testing.T, r Resolver, d *recordingDialer) *Gate {
	t.Helper()
	return &Gate{
		Policy: mustPolicy(t, policy.Config{
			Allow:                   []string{"**.example.com", "198.51.100.0/24", "192.0.2.5:8080"},
			Deny:                    []string{"denied.example.com", "**.evil.example.com", "203.0.113.66"},
			DeniedResolvedAddresses: []string{"203.0.113.77"},
		}),
		Resolver:   r,
		LocalAddrs: func() []netip.Addr { return addrs("127.0.0.1", "::1", "192.0.2.5", "198.51.100.5") },
		Dial:       d.dial,
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		host       string
		port       uint16
		allow      bool
		reason     string
		block      policy.Block
		addrs      []netip.Addr
		wantLookup bool
	}{
		// Refused before any lookup.
		{host: "denied.example.com", port: 443, reason: policy.ReasonDenied, block: policy.BlockDenylist},
		{host: "DENIED.example.com.", port: 443, reason: policy.ReasonDenied, block: policy.BlockDenylist},
		{host: "x.evil.example.com", port: 443, reason: policy.ReasonDenied, block: policy.BlockDenylist},
		{host: "notlisted.test", port: 443, reason: policy.ReasonNotAllowed, block: policy.BlockAllowlist},
		{host: "evilexample.com", port: 443, reason: policy.ReasonNotAllowed, block: policy.BlockAllowlist},
		{host: "0x7f.1", port: 80, reason: policy.ReasonNumericName, block: policy.BlockAddress},
		{host: "2130706433", port: 80, reason: policy.ReasonNumericName, block: policy.BlockAddress},
		{host: "127.1", port: 80, reason: policy.ReasonNumericName, block: policy.BlockAddress},
		{host: "exa mple.com", port: 80, reason: policy.ReasonInvalidHost, block: policy.BlockAddress},
		{host: "fe80::1%eth0", port: 80, reason: policy.ReasonInvalidHost, block: policy.BlockAddress},
		{host: "www.example.com", port: 0, reason: policy.ReasonInvalidHost, block: policy.BlockAddress},
		// Literals: never looked up.
		{host: "203.0.113.10", port: 443, reason: policy.ReasonNotAllowed, block: policy.BlockAllowlist},
		{host: "198.51.100.7", port: 443, allow: true, reason: policy.ReasonAllowed, addrs: addrs("198.51.100.7")},
		{host: "[::ffff:198.51.100.7]", port: 443, allow: true, reason: policy.ReasonAllowed, addrs: addrs("198.51.100.7")},
		{host: "198.51.100.5", port: 443, reason: policy.ReasonClassPrefix + policy.ClassLocalAddress, block: policy.BlockAddress},
		{host: "192.0.2.5", port: 8080, allow: true, reason: policy.ReasonAllowed, addrs: addrs("192.0.2.5")},
		{host: "[::ffff:127.0.0.1]", port: 80, reason: policy.ReasonNotAllowed, block: policy.BlockAllowlist},
		// Allowed names: looked up once, then filtered.
		{host: "www.example.com", port: 443, allow: true, reason: policy.ReasonAllowed, addrs: addrs("203.0.113.10", "2001:db8::10"), wantLookup: true},
		{host: "loop.example.com", port: 443, reason: policy.ReasonClassPrefix + policy.ClassLoopback, block: policy.BlockAddress, wantLookup: true},
		{host: "loop6.example.com", port: 443, reason: policy.ReasonClassPrefix + policy.ClassLoopback, block: policy.BlockAddress, wantLookup: true},
		{host: "ll.example.com", port: 443, reason: policy.ReasonClassPrefix + policy.ClassLinkLocal, block: policy.BlockAddress, wantLookup: true},
		{host: "meta.example.com", port: 80, reason: policy.ReasonClassPrefix + policy.ClassMetadata, block: policy.BlockAddress, wantLookup: true},
		{host: "meta6.example.com", port: 80, reason: policy.ReasonClassPrefix + policy.ClassMetadata, block: policy.BlockAddress, wantLookup: true},
		{host: "nat64.example.com", port: 80, reason: policy.ReasonClassPrefix + policy.ClassLoopback, block: policy.BlockAddress, wantLookup: true},
		{host: "self.example.com", port: 443, reason: policy.ReasonClassPrefix + policy.ClassLocalAddress, block: policy.BlockAddress, wantLookup: true},
		{host: "private.example.com", port: 443, reason: policy.ReasonClassPrefix + policy.ClassPrivate, block: policy.BlockAddress, wantLookup: true},
		{host: "bad-addr.example.com", port: 443, reason: policy.ReasonDenied, block: policy.BlockDenylist, wantLookup: true},
		{host: "mixed.example.com", port: 443, allow: true, reason: policy.ReasonAllowed, addrs: addrs("203.0.113.20", "203.0.113.21", "2001:db8::21"), wantLookup: true},
		{host: "empty.example.com", port: 443, reason: policy.ReasonResolveFailed, block: policy.BlockAddress, wantLookup: true},
		{host: "nxdomain.example.com", port: 443, reason: policy.ReasonResolveFailed, block: policy.BlockAddress, wantLookup: true},
	}
	for _, tc := range tests {
		r := &StaticResolver{Hosts: testHosts}
		d := &recordingDialer{}
		g := newGate(t, r, d)
		res := g.Decide(context.Background(), tc.host, tc.port)
		dec := res.Decision
		if dec.Allow != tc.allow || dec.Reason != tc.reason || dec.Block != tc.block {
			t.Errorf("Decide(%q, %d) = %+v, want allow %v reason %q block %v", tc.host, tc.port, dec, tc.allow, tc.reason, tc.block)
		}
		if !slices.Equal(res.Addrs, tc.addrs) {
			t.Errorf("Decide(%q, %d).Addrs = %v, want %v", tc.host, tc.port, res.Addrs, tc.addrs)
		}
		if dec.Text == "" || strings.ContainsAny(dec.Text, "\r\n") {
			t.Errorf("Decide(%q, %d).Text = %q, want one line", tc.host, tc.port, dec.Text)
		}
		lookups := r.Lookups()
		if tc.wantLookup {
			name := strings.ToLower(strings.TrimSuffix(tc.host, ".")) + "."
			if !slices.Equal(lookups, []string{name}) {
				t.Errorf("Decide(%q, %d) looked up %q, want exactly [%q]", tc.host, tc.port, lookups, name)
			}
		} else if len(lookups) != 0 {
			t.Errorf("Decide(%q, %d) looked up %q, want no lookup", tc.host, tc.port, lookups)
		}
		if len(d.calls) != 0 {
			t.Errorf("Decide(%q, %d) dialled %v", tc.host, tc.port, d.calls)
		}
	}
}

func TestConnectRefusalDialsNothing(t *testing.T) {
	for _, host := range []string{"denied.example.com", "loop.example.com", "meta.example.com", "notlisted.test", "203.0.113.10", "0x7f.1"} {
		r := &StaticResolver{Hosts: testHosts}
		d := &recordingDialer{}
		conn, res, ap, err := newGate(t, r, d).Connect(context.Background(), host, 443)
		if conn != nil || err != nil || res.Decision.Allow || ap.IsValid() {
			t.Errorf("Connect(%q) = %v, %+v, %v, %v; want a refusal", host, conn, res, ap, err)
		}
		if len(d.calls) != 0 {
			t.Errorf("Connect(%q) dialled %v", host, d.calls)
		}
	}
}

func TestConnectDialsOnlySurvivorsInOrder(t *testing.T) {
	r := &StaticResolver{Hosts: testHosts}
	d := &recordingDialer{fail: map[string]bool{"203.0.113.20:443": true}}
	g := newGate(t, r, d)
	g.DialTimeout = 3 * time.Second
	conn, res, ap, err := g.Connect(context.Background(), "mixed.example.com", 443)
	if err != nil || conn == nil || !res.Decision.Allow {
		t.Fatalf("Connect = %v, %+v, %v", conn, res, err)
	}
	conn.Close()
	if want := netip.MustParseAddrPort("203.0.113.21:443"); ap != want {
		t.Errorf("dialled %v, want %v", ap, want)
	}
	if want := []string{"203.0.113.20:443", "203.0.113.21:443"}; !slices.Equal(d.calls, want) {
		t.Errorf("dial attempts %v, want %v (survivors only, stop at first success)", d.calls, want)
	}
	if !slices.Equal(d.networks, []string{"tcp", "tcp"}) {
		t.Errorf("dial networks %v, want tcp", d.networks)
	}
	for _, dl := range d.deadlines {
		if dl <= 0 || dl > 3*time.Second {
			t.Errorf("dial deadline %v away, want within DialTimeout 3s", dl)
		}
	}
	if len(d.deadlines) != len(d.calls) {
		t.Errorf("%d of %d dials had a deadline", len(d.deadlines), len(d.calls))
	}
	if got := r.Lookups(); !slices.Equal(got, []string{"mixed.example.com."}) {
		t.Errorf("lookups %q, want exactly one", got)
	}
}

func TestConnectAllDialsFail(t *testing.T) {
	r := &StaticResolver{Hosts: testHosts}
	d := &recordingDialer{fail: map[string]bool{"203.0.113.10:443": true, "[2001:db8::10]:443": true}}
	conn, res, ap, err := newGate(t, r, d).Connect(context.Background(), "www.example.com", 443)
	if conn != nil || err == nil || !res.Decision.Allow || ap.IsValid() {
		t.Fatalf("Connect = %v, %+v, %v, %v; want an allow with a dial error", conn, res, ap, err)
	}
	if !strings.Contains(err.Error(), "www.example.com:443") || !strings.Contains(err.Error(), "[2001:db8::10]:443") {
		t.Errorf("error %q does not name the target and the addresses", err)
	}
	if want := []string{"203.0.113.10:443", "[2001:db8::10]:443"}; !slices.Equal(d.calls, want) {
		t.Errorf("dial attempts %v, want %v", d.calls, want)
	}
	if got := r.Lookups(); len(got) != 1 {
		t.Errorf("lookups %q, want exactly one (no second lookup after dial failures)", got)
	}
}

func TestConnectCancelledStops(t *testing.T) {
	r := &StaticResolver{Hosts: testHosts}
	ctx, cancel := context.WithCancel(context.Background())
	d := &recordingDialer{fail: map[string]bool{"203.0.113.10:443": true}}
	g := newGate(t, r, d)
	g.Dial = func(c context.Context, network, addr string) (net.Conn, error) {
		cancel() // the first attempt fails and the caller gives up
		return d.dial(c, network, addr)
	}
	conn, _, _, err := g.Connect(ctx, "www.example.com", 443)
	if conn != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Connect after cancel = %v, %v; want context.Canceled", conn, err)
	}
	if len(d.calls) != 1 {
		t.Errorf("dial attempts %v, want only the first", d.calls)
	}
}

type errResolver struct{ calls int }

func (e *errResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	e.calls++
	return nil, errors.New("server misbehaving\ninjected line")
}

func TestResolveFailedIsADecision(t *testing.T) {
	r := &errResolver{}
	d := &recordingDialer{}
	conn, res, _, err := newGate(t, r, d).Connect(context.Background(), "www.example.com", 443)
	if conn != nil || err != nil || res.Decision.Allow || res.Decision.Reason != policy.ReasonResolveFailed || res.Decision.Block != policy.BlockAddress {
		t.Fatalf("Connect = %v, %+v, %v; want a resolve-failed refusal", conn, res, err)
	}
	if strings.ContainsAny(res.Decision.Text, "\n") || !strings.Contains(res.Decision.Text, "www.example.com:443") {
		t.Errorf("text %q: want one line naming the target", res.Decision.Text)
	}
	if r.calls != 1 || len(d.calls) != 0 {
		t.Errorf("%d lookups, %d dials; want 1 and 0", r.calls, len(d.calls))
	}
}

type checkingResolver struct {
	t        *testing.T
	deadline time.Duration
}

func (c *checkingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip" || host != "www.example.com." {
		c.t.Errorf("LookupNetIP(%q, %q), want (\"ip\", \"www.example.com.\")", network, host)
	}
	dl, ok := ctx.Deadline()
	if !ok || time.Until(dl) > c.deadline {
		c.t.Errorf("lookup deadline %v (set %v), want within %v", time.Until(dl), ok, c.deadline)
	}
	return addrs("203.0.113.10"), nil
}

func TestResolverGetsRootedNameAndDeadline(t *testing.T) {
	g := newGate(t, &checkingResolver{t: t, deadline: 2 * time.Second}, &recordingDialer{})
	g.DialTimeout = 2 * time.Second
	if res := g.Decide(context.Background(), "WWW.Example.com.", 443); !res.Decision.Allow {
		t.Errorf("Decide = %+v", res)
	}
}

func TestNilPolicyRefuses(t *testing.T) {
	r := &StaticResolver{Hosts: testHosts}
	g := &Gate{Resolver: r, LocalAddrs: func() []netip.Addr { return nil }}
	for _, h := range []string{"www.example.com", "203.0.113.10"} {
		if res := g.Decide(context.Background(), h, 443); res.Decision.Allow {
			t.Errorf("nil policy allowed %s: %+v", h, res)
		}
	}
	if len(r.Lookups()) != 0 {
		t.Errorf("nil policy looked up %q", r.Lookups())
	}
}

// TestConnectLoopback dials a real listener on loopback through the default
// dialer, by literal and by a name the fake resolver maps to 127.0.0.1.
func TestConnectLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c)
			c.Close()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ps := strconv.Itoa(int(port))
	r := &StaticResolver{Hosts: map[string][]netip.Addr{"svc.test": addrs("127.0.0.1")}}
	g := &Gate{
		Policy:      mustPolicy(t, policy.Config{Allow: []string{"svc.test:" + ps, "127.0.0.1:" + ps}}),
		Resolver:    r,
		DialTimeout: 5 * time.Second,
		// LocalAddrs nil: the real interface addresses are read.
	}
	for _, host := range []string{"127.0.0.1", "svc.test", "[::ffff:127.0.0.1]"} {
		conn, res, ap, err := g.Connect(context.Background(), host, port)
		if err != nil || conn == nil {
			t.Fatalf("Connect(%q) = %v, %+v, %v", host, conn, res, err)
		}
		if _, ok := conn.(*net.TCPConn); !ok {
			t.Errorf("Connect(%q) returned %T, want *net.TCPConn", host, conn)
		}
		if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port); ap != want {
			t.Errorf("Connect(%q) dialled %v, want %v", host, ap, want)
		}
		if _, err := conn.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
			t.Errorf("echo through %q = %q, %v", host, buf, err)
		}
		conn.Close()
	}
	// Without the IP entry, the same name is refused as loopback.
	g.Policy = mustPolicy(t, policy.Config{Allow: []string{"svc.test:" + ps}})
	conn, res, _, err := g.Connect(context.Background(), "svc.test", port)
	if conn != nil || err != nil || res.Decision.Reason != policy.ReasonClassPrefix+policy.ClassLoopback {
		t.Errorf("Connect without IP entry = %v, %+v, %v; want a loopback refusal", conn, res, err)
	}
	// A dial failure after an allow is an error: close the listener's port.
	ln.Close()
	g.Policy = mustPolicy(t, policy.Config{Allow: []string{"127.0.0.1:" + ps}})
	conn, res, _, err = g.Connect(context.Background(), "127.0.0.1", port)
	if conn != nil || err == nil || !res.Decision.Allow {
		t.Errorf("Connect to a closed port = %v, %+v, %v; want an allow and a dial error", conn, res, err)
	}
}

// TestDefaultLocalAddrs checks that, with LocalAddrs nil, an allowed name
// resolving to one of this host's non-loopback addresses is refused.
func TestDefaultLocalAddrs(t *testing.T) {
	own, err := readInterfaceAddrs()
	if err != nil {
		t.Skipf("cannot read interface addresses: %v", err)
	}
	var target netip.Addr
	for _, a := range own {
		if !a.IsValid() || a.Zone() != "" {
			t.Errorf("interface address %v is not usable", a)
		}
		if policy.Classify(a) == "" {
			target = a
		}
	}
	if !target.IsValid() {
		t.Skip("this host has no ordinary (public) interface address to test with")
	}
	r := &StaticResolver{Hosts: map[string][]netip.Addr{"self.test": {target}}}
	g := &Gate{Policy: mustPolicy(t, policy.Config{Allow: []string{"self.test"}}), Resolver: r}
	res := g.Decide(context.Background(), "self.test", 443)
	if res.Decision.Allow || res.Decision.Reason != policy.ReasonClassPrefix+policy.ClassLocalAddress {
		t.Errorf("Decide(self.test → %v) = %+v, want local-address refusal", target, res.Decision)
	}
}

func TestAddrCache(t *testing.T) {
	now := time.Unix(1000, 0)
	reads := 0
	fail := false
	c := &addrCache{
		ttl: time.Second,
		now: func() time.Time { return now },
		read: func() ([]netip.Addr, error) {
			reads++
			if fail {
				return nil, errors.New("fake failure")
			}
			return addrs("192.0.2." + strconv.Itoa(reads)), nil
		},
	}
	get := func() (netip.Addr, error) {
		a, err := c.get()
		if err != nil {
			return netip.Addr{}, err
		}
		return a[0], nil
	}
	steps := []struct {
		advance time.Duration
		fail    bool
		want    string // "" means an error
		reads   int
	}{
		{0, false, "192.0.2.1", 1},
		{500 * time.Millisecond, false, "192.0.2.1", 1},
		{600 * time.Millisecond, false, "192.0.2.2", 2},
		{2 * time.Second, true, "", 3},
		{0, true, "", 4}, // errors are not cached
		{0, false, "192.0.2.5", 5},
		{-time.Hour, false, "192.0.2.6", 6}, // clock went back: read again
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		fail = s.fail
		a, err := get()
		if s.want == "" {
			if err == nil {
				t.Errorf("step %d: got %v, want an error", i, a)
			}
		} else if err != nil || a != netip.MustParseAddr(s.want) {
			t.Errorf("step %d: got %v, %v; want %s", i, a, err, s.want)
		}
		if reads != s.reads {
			t.Errorf("step %d: %d reads, want %d", i, reads, s.reads)
		}
	}
}

func TestDecideLocalAddrsUnreadable(t *testing.T) {
	saved := osLocalAddrs
	defer func() { osLocalAddrs = saved }()
	osLocalAddrs = &addrCache{ttl: time.Second, read: func() ([]netip.Addr, error) { return nil, errors.New("fake failure") }}
	r := &StaticResolver{Hosts: testHosts}
	g := &Gate{Policy: mustPolicy(t, policy.Config{Allow: []string{"**.example.com"}}), Resolver: r}
	res := g.Decide(context.Background(), "www.example.com", 443)
	if res.Decision.Allow || res.Decision.Block != policy.BlockAddress {
		t.Errorf("Decide with unreadable interface addresses = %+v, want a refusal", res.Decision)
	}
}

func TestStaticResolver(t *testing.T) {
	r := &StaticResolver{Hosts: map[string][]netip.Addr{"dual.test": addrs("203.0.113.1", "2001:db8::1")}}
	tests := []struct {
		network, host string
		want          []netip.Addr
	}{
		{"ip", "dual.test", addrs("203.0.113.1", "2001:db8::1")},
		{"ip", "DUAL.test.", addrs("203.0.113.1", "2001:db8::1")},
		{"ip4", "dual.test", addrs("203.0.113.1")},
		{"ip6", "dual.test", addrs("2001:db8::1")},
		{"ip", "other.test", nil},
	}
	for _, tc := range tests {
		got, err := r.LookupNetIP(context.Background(), tc.network, tc.host)
		if !slices.Equal(got, tc.want) {
			t.Errorf("LookupNetIP(%q, %q) = %v, want %v", tc.network, tc.host, got, tc.want)
		}
		var dnsErr *net.DNSError
		if (tc.want == nil) != (errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
			t.Errorf("LookupNetIP(%q, %q) error %v", tc.network, tc.host, err)
		}
	}
	if got := r.Lookups(); len(got) != len(tests) || got[1] != "DUAL.test." {
		t.Errorf("Lookups() = %q", got)
	}
}
