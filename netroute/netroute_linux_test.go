//go:build linux

package netroute

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/sandgate/sandgate/internal/testnet"
)

// udpConnect connects a UDP socket (which sends nothing) to addr inside ns:
// it fails with ENETUNREACH exactly when there is no route.
func udpConnect(ns *testnet.NS, addr string) error {
	return ns.Do(func() error {
		c, err := net.Dial("udp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

func TestDefaultViaLoopback(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	for _, a := range []string{"192.0.2.1:443", "[2001:db8::1]:443"} {
		if err := udpConnect(ns, a); !errors.Is(err, syscall.ENETUNREACH) {
			t.Fatalf("before: connect to %s = %v, want ENETUNREACH", a, err)
		}
	}
	// Once by path, once from inside; the second finds the routes there.
	if err := DefaultViaLoopback(ns.Path); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return DefaultViaLoopback("") }); err != nil {
		t.Fatalf("second call: %v", err)
	}
	for _, a := range []string{"192.0.2.1:443", "[2001:db8::1]:443", "198.18.0.9:80"} {
		if err := udpConnect(ns, a); err != nil {
			t.Errorf("after: connect to %s = %v", a, err)
		}
	}
	v4, err := ns.IP("-4", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	v6, err := ns.IP("-6", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v4, "default dev lo") || !strings.Contains(v4, "src 127.0.0.1") || !strings.Contains(v6, "default dev lo") {
		t.Errorf("routes:\n%s%s", v4, v6)
	}
	// The source of a connection is 127.0.0.1, not 0.0.0.0.
	var local net.Addr
	if err := ns.Do(func() error {
		c, err := net.Dial("udp4", "192.0.2.1:443")
		if err == nil {
			local = c.LocalAddr()
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(local.String(), "127.0.0.1:") {
		t.Errorf("source address %v, want 127.0.0.1", local)
	}
}
