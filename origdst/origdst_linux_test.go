//go:build linux

package origdst

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/testnet"
)

// accept returns the next connection ln accepts, or fails t after a while.
func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("accept on %s: %v", ln.Addr(), r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(10 * time.Second):
		ln.Close()
		t.Fatalf("nothing reached %s", ln.Addr())
	}
	return nil
}

// TestNotRedirected: a plain loopback connection, with or without
// connection tracking in this namespace, has no other destination. Runs
// unprivileged.
func TestNotRedirected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := accept(t, ln)
	if ap, err := Of(s); !errors.Is(err, ErrNotRedirected) {
		t.Errorf("Of(a direct connection) = %v, %v; want ErrNotRedirected", ap, err)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if _, err := Of(p1); err == nil || errors.Is(err, ErrNotRedirected) {
		t.Errorf("Of(a pipe) = %v; want an error saying it is no socket", err)
	}
}

// redirect installs, in the namespace at path, "tcp dport 81 fib daddr
// type != local redirect to :dualPort" and "tcp fib daddr type != local
// redirect to :port" in a nat chain on the output hook.
func redirect(t *testing.T, path string, port, dualPort uint16) {
	t.Helper()
	f, err := openNS(path)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(f)
	c, err := nftables.New(nftables.WithNetNSFd(f))
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Name: "origdst_test", Family: nftables.TableFamilyINet})
	ch := c.AddChain(&nftables.Chain{Name: "nat", Table: tb, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	rule := func(dport []byte, to uint16) {
		ex := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		}
		if dport != nil {
			ex = append(ex,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dport})
		}
		ex = append(ex,
			&expr.Fib{Register: 1, ResultADDRTYPE: true, FlagDADDR: true},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.RTN_LOCAL, 0, 0, 0}},
			&expr.Immediate{Register: 1, Data: []byte{byte(to >> 8), byte(to)}},
			&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: ex})
	}
	rule([]byte{0, 81}, dualPort)
	rule(nil, port)
	if err := c.Flush(); err != nil {
		t.Fatalf("installing the redirect: %v", err)
	}
}

func openNS(path string) (int, error) { return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0) }

// TestRedirected connects, inside a test-owned network namespace with a
// real nftables redirect, to addresses that exist nowhere, and reads each
// connection's original destination at the listener: IPv4 and IPv6
// listeners, and a dual-stack one taking IPv4 as mapped addresses.
func TestRedirected(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	// Without a route, connect() to a non-local address fails with
	// ENETUNREACH before nftables sees a packet.
	for _, args := range [][]string{
		{"route", "add", "default", "dev", "lo", "src", "127.0.0.1"},
		{"-6", "route", "add", "default", "dev", "lo"},
	} {
		if _, err := ns.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	var ln4, ln6, dual net.Listener
	if err := ns.Do(func() (err error) {
		if ln4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		if ln6, err = net.Listen("tcp6", net.JoinHostPort("::1", portOf(ln4))); err != nil {
			return err
		}
		dual, err = net.Listen("tcp", "[::]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{ln4, ln6, dual} {
		defer ln.Close()
	}
	redirect(t, ns.Path, uint16(ln4.Addr().(*net.TCPAddr).Port), uint16(dual.Addr().(*net.TCPAddr).Port))

	tests := []struct {
		dial string
		ln   net.Listener
		want string // "" means ErrNotRedirected
	}{
		{"192.0.2.10:80", ln4, "192.0.2.10:80"},
		{"198.18.0.7:22", ln4, "198.18.0.7:22"},
		{"[2001:db8::10]:443", ln6, "[2001:db8::10]:443"},
		{"203.0.113.5:81", dual, "203.0.113.5:81"},
		{"[2001:db8::11]:81", dual, "[2001:db8::11]:81"},
		{ln4.Addr().String(), ln4, ""},
		{ln6.Addr().String(), ln6, ""},
	}
	for _, tc := range tests {
		var c net.Conn
		if err := ns.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", tc.dial, 5*time.Second)
			return err
		}); err != nil {
			t.Errorf("dial %s in the namespace: %v", tc.dial, err)
			continue
		}
		s := accept(t, tc.ln)
		got, err := Of(s)
		switch {
		case tc.want == "" && !errors.Is(err, ErrNotRedirected):
			t.Errorf("%s: Of = %v, %v; want ErrNotRedirected", tc.dial, got, err)
		case tc.want != "" && (err != nil || got != netip.MustParseAddrPort(tc.want)):
			t.Errorf("%s: Of = %v, %v; want %s", tc.dial, got, err, tc.want)
		}
		c.Close()
	}
}

func portOf(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}
