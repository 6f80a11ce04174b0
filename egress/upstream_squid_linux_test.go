package egress

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandgate/sandgate/internal/squidtest"
	"github.com/sandgate/sandgate/policy"
)

// TestUpstreamSquid connects through a real squid: by name (squid resolves
// and its own rules apply: a destination it refuses is a 403, missing
// credentials a 407, each naming the upstream without its credentials),
// and by the checked address; sandgate's refusals never reach squid.
func TestUpstreamSquid(t *testing.T) {
	port := echoServer(t)
	ps := strconv.Itoa(int(port))
	sq := squidtest.Start(t, squidtest.Config{
		Hosts:   map[string]string{"svc.test": "127.0.0.1", "blocked.test": "127.0.0.1"},
		Ports:   []uint16{port},
		Blocked: []string{"blocked.test"},
		Auth:    true,
	})
	const secret = "s3cret-pw"
	withAuth, err := ParseUpstream("http://alice:" + secret + "@" + sq.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &StaticResolver{Hosts: map[string][]netip.Addr{"svc.test": addrs("127.0.0.1")}}
	g := &Gate{
		Policy: mustPolicy(t, policy.Config{
			Allow: []string{"svc.test:" + ps, "blocked.test:" + ps, "svc.test:1"},
			Deny:  []string{"denied.test"},
		}),
		Resolver: r, DialTimeout: 5 * time.Second, Upstream: withAuth,
	}
	ctx := context.Background()

	// By name: allowed, sent as the name, never resolved here.
	conn, res, dialed, err := g.Connect(ctx, "svc.test", port)
	if err != nil || conn == nil || !res.Decision.Allow {
		t.Fatalf("Connect(svc.test) through squid = %v, %+v, %v", conn, res, err)
	}
	echoThrough(t, conn)
	conn.Close()
	if dialed.IsValid() || len(r.Lookups()) != 0 {
		t.Errorf("by name: dialled %v, lookups %v; want no local address and no lookup", dialed, r.Lookups())
	}
	sq.WaitLog(t, "CONNECT svc.test:"+ps)

	// sandgate's own refusal: squid never hears of it.
	conn, res, _, err = g.Connect(ctx, "denied.test", port)
	if conn != nil || err != nil || res.Decision.Reason != policy.ReasonDenied {
		t.Errorf("Connect(denied.test) = %v, %+v, %v; want sandgate's deny", conn, res, err)
	}

	// squid's own rules: a name it blocks, a port it does not allow.
	for _, tc := range []struct {
		host string
		port uint16
	}{{"blocked.test", port}, {"svc.test", 1}} {
		conn, res, _, err = g.Connect(ctx, tc.host, tc.port)
		if conn != nil || err == nil || !res.Decision.Allow || !strings.Contains(err.Error(), "403") ||
			!strings.Contains(err.Error(), "upstream proxy http://"+sq.Addr) {
			t.Errorf("Connect(%s:%d) = %v, %+v, %v; want squid's 403 naming the upstream", tc.host, tc.port, conn, res, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("error repeats the upstream's password: %v", err)
		}
	}
	log := sq.WaitLog(t, "blocked.test")
	if strings.Contains(log, "denied.test") {
		t.Errorf("squid heard of a name sandgate denied:\n%s", log)
	}

	// Without credentials: 407, named as such.
	noAuth := *withAuth
	noAuth.User, noAuth.Password = "", ""
	g2 := *g
	g2.Upstream = &noAuth
	_, _, _, err = g2.Connect(ctx, "svc.test", port)
	if err == nil || !strings.Contains(err.Error(), "407") || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Connect without upstream credentials = %v; want a 407 that says so", err)
	}

	// By address: resolved and checked here, the checked address sent.
	addrMode := *withAuth
	addrMode.Send = SendAddress
	g3 := *g
	g3.Upstream = &addrMode
	g3.Policy = mustPolicy(t, policy.Config{Allow: []string{"svc.test:" + ps, "127.0.0.1:" + ps}})
	conn, _, dialed, err = g3.Connect(ctx, "svc.test", port)
	if err != nil || conn == nil {
		t.Fatalf("Connect by address = %v, %v", conn, err)
	}
	echoThrough(t, conn)
	conn.Close()
	if want := netip.MustParseAddrPort("127.0.0.1:" + ps); dialed != want {
		t.Errorf("by address: dialled %v, want %v", dialed, want)
	}
	sq.WaitLog(t, "CONNECT 127.0.0.1:"+ps)
	// The local address check runs: loopback without an IP entry is refused.
	g3.Policy = mustPolicy(t, policy.Config{Allow: []string{"svc.test:" + ps}})
	conn, res, _, err = g3.Connect(ctx, "svc.test", port)
	if conn != nil || err != nil || res.Decision.Reason != policy.ReasonClassPrefix+policy.ClassLoopback {
		t.Errorf("by address, loopback not allowed = %v, %+v, %v; want the local loopback refusal", conn, res, err)
	}

	// NO_PROXY: a bypassed name is dialled directly with every local check.
	bypass := *withAuth
	bypass.NoProxy = []string{".test"}
	g4 := *g
	g4.Upstream = &bypass
	conn, res, _, err = g4.Connect(ctx, "svc.test", port)
	if conn != nil || err != nil || res.Decision.Reason != policy.ReasonClassPrefix+policy.ClassLoopback {
		t.Errorf("NO_PROXY name = %v, %+v, %v; want the direct path's loopback refusal", conn, res, err)
	}
}

// TestUpstreamUnreachable: a dead upstream is a dial error naming it.
func TestUpstreamUnreachable(t *testing.T) {
	up, err := ParseUpstream("http://bob:pw-hidden@127.0.0.1:" + strconv.Itoa(freePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{Policy: mustPolicy(t, policy.Config{Allow: []string{"svc.test"}}), DialTimeout: 2 * time.Second, Upstream: up}
	_, res, _, err := g.Connect(context.Background(), "svc.test", 443)
	if err == nil || !res.Decision.Allow || !strings.Contains(err.Error(), "unreachable") ||
		!strings.Contains(err.Error(), up.String()) || strings.Contains(err.Error(), "pw-hidden") {
		t.Errorf("Connect through a dead upstream = %+v, %v; want an unreachable error naming it without credentials", res, err)
	}
}
