//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/internal/testnet"
	"github.com/sandgate/sandgate/netroute"
	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/policy"
)

// TestTransparentRealRedirect runs the transparent path as a sandbox has
// it: a client in a network namespace of the test's own, with only its
// loopback, the default route through it and the sandbox's nftables rules,
// connects to addresses that exist nowhere; the listener sits in that
// namespace and the Server, in the test's, reads each original destination
// from the kernel (origdst), decides and dials.
func TestTransparentRealRedirect(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	if err := netroute.DefaultViaLoopback(ns.Path); err != nil {
		t.Fatal(err)
	}
	var ln4, ln6 net.Listener
	if err := ns.Do(func() (err error) {
		if ln4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		ln6, err = net.Listen("tcp6", fmt.Sprintf("[::1]:%d", ln4.Addr().(*net.TCPAddr).Port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	defer ln6.Close()
	if err := nftfw.ApplySandbox(ns.Path, nftfw.SandboxPlan{TCPPort: uint16(ln4.Addr().(*net.TCPAddr).Port)}); err != nil {
		t.Fatal(err)
	}

	echo := echoServer(t, "tcp4", "127.0.0.1:0")
	pol, err := policy.New(policy.Config{Allow: []string{"svc.test:443"}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var dialed []string
	log := &eventLog{}
	srv := New(Options{Audit: log, Logf: t.Logf, Gate: &egress.Gate{
		Policy: pol,
		Resolver: &egress.StaticResolver{Hosts: map[string][]netip.Addr{
			"svc.test": {netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8::10")},
		}},
		LocalAddrs: func() []netip.Addr { return nil },
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, addr)
			mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", echo))
		},
	}})
	opts := TransparentOptions{Names: newFakeNames(), Peek: true, PeekTimeout: time.Second}
	served := make(chan error, 2)
	for _, ln := range []net.Listener{ln4, ln6} {
		go func() { served <- srv.ServeTransparent(ln, opts) }()
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		for range 2 {
			if err := <-served; err != nil {
				t.Errorf("ServeTransparent: %v", err)
			}
		}
	}()

	// inside runs fn on a connection made inside the namespace to addr.
	inside := func(addr string, fn func(c net.Conn) error) error {
		return ns.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if errors.Is(err, syscall.ECONNRESET) {
				// Reset before connect() even returned.
				return fn(nil)
			}
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			return fn(c)
		})
	}
	echoes := func(first []byte) func(net.Conn) error {
		return func(c net.Conn) error {
			if c == nil {
				return errors.New("reset")
			}
			msg := append(first, "through the transparent path"...)
			if _, err := c.Write(msg); err != nil {
				return err
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				return err
			}
			if string(got) != string(msg) {
				return errors.New("the echo differs")
			}
			return nil
		}
	}
	reset := func(c net.Conn) error {
		if c == nil {
			return nil
		}
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			return fmt.Errorf("read %v, want a reset", err)
		}
		return nil
	}
	if err := inside("198.18.0.1:443", echoes(nil)); err != nil {
		t.Errorf("synthetic address of an allowed name: %v", err)
	}
	if err := inside("[2001:db8::10]:443", echoes(clientHello(t, "svc.test"))); err != nil {
		t.Errorf("IPv6 literal with an allowed TLS name resolving to it: %v", err)
	}
	if err := inside("1.1.1.1:80", reset); err != nil {
		t.Errorf("IP literal on no list: %v", err)
	}
	if err := inside(ln4.Addr().String(), reset); err != nil {
		t.Errorf("straight to the listener: %v", err)
	}
	if ev := log.wait(t, "svc.test", 443); ev.Proto != ProtoTransparent || ev.Dialed != "203.0.113.10:443" || ev.Decision != audit.DecisionAllow {
		t.Errorf("synthetic: %+v", ev)
	}
	if ev := log.wait(t, "1.1.1.1", 80); ev.Text != "1.1.1.1:80 is not on the allow list" || ev.Decision != audit.DecisionDeny {
		t.Errorf("literal: %+v", ev)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(dialed)
		mu.Unlock()
		if slices.Equal(got, []string{"203.0.113.10:443", "[2001:db8::10]:443"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dialled %q", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, ev := range log.all() {
		if ev.Host == "127.0.0.1" {
			t.Errorf("the unredirected connection was recorded: %+v", ev)
		}
	}
}
