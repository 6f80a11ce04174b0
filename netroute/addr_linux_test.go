//go:build linux

package netroute

import (
	"net"
	"net/netip"
	"testing"

	"github.com/sandgate/sandgate/internal/testnet"
)

func TestAddToLoopback(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	v4, v6 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("fd00:db8::1")
	bind := func(a netip.Addr) error {
		return ns.Do(func() error {
			l, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
			if err == nil {
				l.Close()
			}
			return err
		})
	}
	if err := bind(v4); err == nil {
		t.Fatal("198.18.0.1 could be bound before it was added")
	}
	if err := AddToLoopback(ns.Path, v4, v6, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return AddToLoopback("", v4, v6) }); err != nil {
		t.Fatalf("second call: %v", err)
	}
	for _, a := range []netip.Addr{v4, v6} {
		if err := bind(a); err != nil {
			t.Errorf("binding %s after AddToLoopback: %v", a, err)
		}
	}
}
