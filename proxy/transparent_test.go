package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// fakeNames is a synthetic range for tests: 198.18.0.0/24, with a few
// mappings, counting holds.
type fakeNames struct {
	mu    sync.Mutex
	names map[netip.Addr]string
	hosts map[netip.Addr][]netip.Addr
	held  map[netip.Addr]int
}

func newFakeNames() *fakeNames {
	a := netip.MustParseAddr
	return &fakeNames{
		names: map[netip.Addr]string{
			a("198.18.0.1"): "svc.test", a("198.18.0.2"): "hosts.test", a("198.18.0.3"): "other.test",
			a("198.18.0.4"): "denied.test", a("198.18.0.5"): "loop.test",
		},
		hosts: map[netip.Addr][]netip.Addr{a("198.18.0.2"): {a("203.0.113.12")}, a("198.18.0.5"): {a("127.0.0.1")}},
		held:  map[netip.Addr]int{},
	}
}

func (f *fakeNames) Contains(ip netip.Addr) bool {
	return netip.MustParsePrefix("198.18.0.0/24").Contains(ip)
}

func (f *fakeNames) Acquire(ip netip.Addr) (string, []netip.Addr, func(), bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name, ok := f.names[ip]
	if !ok {
		return "", nil, func() {}, false
	}
	f.held[ip]++
	var once sync.Once
	return name, f.hosts[ip], func() {
		once.Do(func() {
			f.mu.Lock()
			f.held[ip]--
			f.mu.Unlock()
		})
	}, true
}

func (f *fakeNames) holds(ip string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held[netip.MustParseAddr(ip)]
}

// fakeDst stands in for the kernel's record of redirects: the test names
// the original destination of each client connection by the client's
// local address.
type fakeDst struct {
	mu   sync.Mutex
	dsts map[string]netip.AddrPort
	set  chan struct{}
}

func newFakeDst() *fakeDst {
	return &fakeDst{dsts: map[string]netip.AddrPort{}, set: make(chan struct{}, 1)}
}

func (f *fakeDst) originalDst(c net.Conn) (netip.AddrPort, error) {
	deadline := time.After(5 * time.Second)
	for {
		f.mu.Lock()
		d, ok := f.dsts[c.RemoteAddr().String()]
		f.mu.Unlock()
		if ok {
			if !d.IsValid() {
				return d, errors.New("not redirected (fake)")
			}
			return d, nil
		}
		select {
		case <-f.set:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			return netip.AddrPort{}, errors.New("the test named no destination")
		}
	}
}

// transparentEnv is a Server serving a transparent listener on loopback
// whose gate "dials" any address by connecting to a local echo server,
// recording the address asked for.
type transparentEnv struct {
	t        *testing.T
	srv      *Server
	log      *eventLog
	resolver *egress.StaticResolver
	names    *fakeNames
	dst      *fakeDst
	addr     string
	served   chan error

	mu     sync.Mutex
	dialed []string
	failAt string // an address whose dial fails
}

func newTransparentEnv(t *testing.T, peek bool) *transparentEnv {
	t.Helper()
	a := netip.MustParseAddr
	pol, err := policy.New(policy.Config{
		Allow: []string{"svc.test", "hosts.test:443", "other.test:443", "loop.test", "198.51.100.0/24:443", "203.0.113.77:22"},
		Deny:  []string{"denied.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &transparentEnv{
		t: t, log: &eventLog{}, names: newFakeNames(), dst: newFakeDst(), served: make(chan error, 1),
		resolver: &egress.StaticResolver{Hosts: map[string][]netip.Addr{
			"svc.test":    {a("203.0.113.10"), a("2001:db8::10")},
			"other.test":  {a("203.0.113.11")},
			"hosts.test":  {a("203.0.113.66")}, // never asked: the hosts file wins
			"denied.test": {a("203.0.113.13")},
		}},
	}
	echo := echoServer(t, "tcp4", "127.0.0.1:0")
	gate := &egress.Gate{
		Policy:     pol,
		Resolver:   e.resolver,
		LocalAddrs: func() []netip.Addr { return nil },
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			e.mu.Lock()
			e.dialed = append(e.dialed, addr)
			fail := addr == e.failAt
			e.mu.Unlock()
			if fail {
				return nil, errors.New("connection refused (fake)")
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", echo))
		},
	}
	e.srv = New(Options{Gate: gate, Audit: e.log, Logf: t.Logf})
	ln := listen(t, "tcp4", "127.0.0.1:0")
	e.addr = ln.Addr().String()
	opts := TransparentOptions{OriginalDst: e.dst.originalDst, Names: e.names, Peek: peek, PeekTimeout: 300 * time.Millisecond}
	go func() { e.served <- e.srv.ServeTransparent(ln, opts) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-e.served; err != nil {
			t.Errorf("ServeTransparent returned %v after Shutdown", err)
		}
	})
	return e
}

// connect opens a client connection whose original destination is dst
// ("" for one that was not redirected).
func (e *transparentEnv) connect(dst string) net.Conn {
	e.t.Helper()
	c := dial(e.t, e.addr)
	var d netip.AddrPort
	if dst != "" {
		d = netip.MustParseAddrPort(dst)
	}
	e.dst.mu.Lock()
	e.dst.dsts[c.LocalAddr().String()] = d
	e.dst.mu.Unlock()
	select {
	case e.dst.set <- struct{}{}:
	default:
	}
	return c
}

func (e *transparentEnv) dials() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.dialed)
}

// refusedByReset reports whether the server reset c without sending
// anything.
func refusedByReset(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	return n == 0 && err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded)
}

// clientHello returns the first flight of a TLS client naming name.
func clientHello(t *testing.T, name string) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go tls.Client(c1, &tls.Config{ServerName: name, InsecureSkipVerify: true}).Handshake()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16<<10)
	n, err := c2.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func TestTransparentDecisions(t *testing.T) {
	e := newTransparentEnv(t, false)
	tests := []struct {
		dst    string
		host   string // the event's host
		reason string
		dialed string // "" when nothing may be dialled
	}{
		// Synthetic addresses are decided by their names.
		{"198.18.0.1:443", "svc.test", policy.ReasonAllowed, "203.0.113.10:443"},
		{"198.18.0.1:5432", "svc.test", policy.ReasonAllowed, "203.0.113.10:5432"},
		{"198.18.0.2:443", "hosts.test", policy.ReasonAllowed, "203.0.113.12:443"},
		{"198.18.0.2:80", "hosts.test", policy.ReasonNotAllowed, ""},
		{"198.18.0.4:443", "denied.test", policy.ReasonDenied, ""},
		{"198.18.0.5:80", "loop.test", policy.ReasonClassPrefix + policy.ClassLoopback, ""},
		{"198.18.0.9:443", "198.18.0.9", ReasonUnknownSynthetic, ""},
		// Other addresses by IP rules and their class.
		{"198.51.100.7:443", "198.51.100.7", policy.ReasonAllowed, "198.51.100.7:443"},
		{"198.51.100.7:80", "198.51.100.7", policy.ReasonNotAllowed, ""},
		{"203.0.113.77:22", "203.0.113.77", policy.ReasonAllowed, "203.0.113.77:22"},
		{"1.1.1.1:80", "1.1.1.1", policy.ReasonNotAllowed, ""},
		{"[2001:db8::10]:443", "2001:db8::10", policy.ReasonNotAllowed, ""},
	}
	for _, tc := range tests {
		before := len(e.dials())
		c := e.connect(tc.dst)
		port := netip.MustParseAddrPort(tc.dst).Port()
		if tc.dialed != "" {
			echoCheck(t, c, "hello "+tc.dst)
			c.Close()
		} else if !refusedByReset(c) {
			t.Errorf("%s: the refused connection was not reset", tc.dst)
		}
		ev := e.log.wait(t, tc.host, port)
		if ev.Proto != ProtoTransparent || ev.Reason != tc.reason || (ev.Decision == audit.DecisionAllow) != (tc.dialed != "") {
			t.Errorf("%s: event %+v, want reason %q", tc.dst, ev, tc.reason)
		}
		if ev.Dialed != tc.dialed {
			t.Errorf("%s: dialled %q, want %q", tc.dst, ev.Dialed, tc.dialed)
		}
		if got := e.dials()[before:]; (tc.dialed == "" && len(got) != 0) || (tc.dialed != "" && !slices.Equal(got, []string{tc.dialed})) {
			t.Errorf("%s: dials %q, want %q", tc.dst, got, tc.dialed)
		}
		if ev.Text == "" || strings.ContainsAny(ev.Text, "\r\n") {
			t.Errorf("%s: text %q", tc.dst, ev.Text)
		}
	}
	// The same texts as the proxy's, for the exit summary.
	if ev := e.log.wait(t, "1.1.1.1", 80); ev.Text != "1.1.1.1:80 is not on the allow list" {
		t.Errorf("text %q", ev.Text)
	}
	if got := audit.FormatSummary([]audit.Refusal{{Host: "1.1.1.1", Port: 80, Reason: policy.ReasonNotAllowed, Count: 1}}); !strings.Contains(got, "1.1.1.1:80 (IP literal not on the allow list)") {
		t.Errorf("summary %q", got)
	}
	// A denied name and a hosts-file name are never looked up.
	for _, n := range e.resolver.Lookups() {
		if strings.HasPrefix(n, "denied.test") || strings.HasPrefix(n, "hosts.test") {
			t.Errorf("looked up %q", n)
		}
	}
	// Every hold on a synthetic mapping ended with its connection.
	deadline := time.Now().Add(5 * time.Second)
	for _, ip := range []string{"198.18.0.1", "198.18.0.2", "198.18.0.4", "198.18.0.5"} {
		for e.names.holds(ip) != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := e.names.holds(ip); n != 0 {
			t.Errorf("%s still held %d times", ip, n)
		}
	}
}

func TestTransparentHoldsWhileOpen(t *testing.T) {
	e := newTransparentEnv(t, false)
	c := e.connect("198.18.0.1:443")
	echoCheck(t, c, "ping")
	if n := e.names.holds("198.18.0.1"); n != 1 {
		t.Errorf("%d holds on an open connection's mapping, want 1", n)
	}
	c.Close()
	ev := e.log.wait(t, "svc.test", 443)
	if ev.BytesUp != 4 || ev.BytesDown != 4 {
		t.Errorf("event %+v: want 4 bytes each way", ev)
	}
	if n := e.names.holds("198.18.0.1"); n != 0 {
		t.Errorf("%d holds after the tunnel's event, want 0", n)
	}
}

func TestTransparentNotRedirectedOrFailing(t *testing.T) {
	e := newTransparentEnv(t, false)
	c := e.connect("")
	if !refusedByReset(c) {
		t.Error("a connection without an original destination was not reset")
	}
	e.mu.Lock()
	e.failAt = "203.0.113.11:443"
	e.mu.Unlock()
	c = e.connect("198.18.0.3:443")
	if !refusedByReset(c) {
		t.Error("a connection whose dial failed was not reset")
	}
	if ev := e.log.wait(t, "other.test", 443); ev.Reason != audit.ReasonDialFailed || ev.Decision != audit.DecisionAllow {
		t.Errorf("dial failure event %+v", ev)
	}
	for _, ev := range e.log.all() {
		if ev.Host == "" {
			t.Errorf("an event without a host: %+v", ev)
		}
	}
}

func TestTransparentPeek(t *testing.T) {
	e := newTransparentEnv(t, true)
	hello := func(name string) []byte { return clientHello(t, name) }
	tests := []struct {
		what   string
		dst    string
		first  []byte
		host   string
		reason string
		dialed string
		text   string // a part of the event's text
	}{
		{"TLS name resolving to the address", "203.0.113.10:443", hello("svc.test"), "svc.test", policy.ReasonAllowed, "203.0.113.10:443", ""},
		{"HTTP Host resolving to the address", "203.0.113.10:80", []byte("GET / HTTP/1.1\r\nHost: svc.test\r\n\r\n"), "svc.test", policy.ReasonAllowed, "203.0.113.10:80", ""},
		{"TLS name of another address (fronting)", "203.0.113.99:443", hello("svc.test"), "203.0.113.99", policy.ReasonNotAllowed, "", "resolves to 203.0.113.10 and 2001:db8::10, not to 203.0.113.99"},
		{"TLS name on the deny list", "203.0.113.13:443", hello("denied.test"), "203.0.113.13", policy.ReasonDenied, "", "denied.test"},
		{"TLS name not on the allow list", "203.0.113.14:443", hello("unknown.test"), "203.0.113.14", policy.ReasonNotAllowed, "", "unknown.test"},
		{"TLS to an IP address (no name)", "203.0.113.15:443", hello("203.0.113.15"), "203.0.113.15", policy.ReasonNotAllowed, "", "203.0.113.15:443 is not on the allow list"},
		{"a client that waits for the server", "203.0.113.16:22", nil, "203.0.113.16", policy.ReasonNotAllowed, "", "203.0.113.16:22 is not on the allow list"},
		{"garbage", "203.0.113.17:443", []byte{0x16, 3, 1, 0, 0}, "203.0.113.17", policy.ReasonNotAllowed, "", ""},
		{"name allowed on another port only", "203.0.113.11:80", []byte("GET / HTTP/1.1\r\nHost: other.test\r\n\r\n"), "203.0.113.11", policy.ReasonNotAllowed, "", "other.test:80 is not on the allow list"},
	}
	for _, tc := range tests {
		before := len(e.dials())
		c := e.connect(tc.dst)
		if tc.first != nil {
			if _, err := c.Write(tc.first); err != nil {
				t.Fatal(err)
			}
		}
		port := netip.MustParseAddrPort(tc.dst).Port()
		if tc.dialed != "" {
			// The peeked bytes reach the upstream first, unchanged.
			got := make([]byte, len(tc.first))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, tc.first) {
				t.Errorf("%s: the upstream echoed %d bytes (%v), not the first bytes", tc.what, len(got), err)
			}
			echoCheck(t, c, "and more")
			c.Close()
		} else if !refusedByReset(c) {
			t.Errorf("%s: not reset", tc.what)
		}
		ev := e.log.wait(t, tc.host, port)
		if ev.Reason != tc.reason || ev.Dialed != tc.dialed || !strings.Contains(ev.Text, tc.text) {
			t.Errorf("%s: event %+v; want reason %q, dialled %q, text with %q", tc.what, ev, tc.reason, tc.dialed, tc.text)
		}
		if got := e.dials()[before:]; (tc.dialed == "" && len(got) != 0) || (tc.dialed != "" && !slices.Equal(got, []string{tc.dialed})) {
			t.Errorf("%s: dials %q", tc.what, got)
		}
	}
	// svc.test was looked up once per connection that named it; the
	// denied name never.
	var svc int
	for _, n := range e.resolver.Lookups() {
		if strings.HasPrefix(n, "denied.test") {
			t.Errorf("looked up %q", n)
		}
		if n == "svc.test." {
			svc++
		}
	}
	if svc != 3 {
		t.Errorf("svc.test looked up %d times for 3 connections", svc)
	}
}

// TestTransparentMany relays many concurrent connections.
func TestTransparentMany(t *testing.T) {
	e := newTransparentEnv(t, false)
	const n = 200
	var wg sync.WaitGroup
	var failed atomic.Int32
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = e.connect("198.18.0.1:443")
	}
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("connection %d", i)
			io.WriteString(c, msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
				failed.Add(1)
			}
			c.Close()
		}()
	}
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d concurrent connections failed", f, n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.names.holds("198.18.0.1") != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if h := e.names.holds("198.18.0.1"); h != 0 {
		t.Errorf("%d holds left", h)
	}
}

func TestTransparentWithoutPolicy(t *testing.T) {
	srv := New(Options{})
	ln := listen(t, "tcp4", "127.0.0.1:0")
	log := &eventLog{}
	srv.sink = log
	dst := newFakeDst()
	done := make(chan error, 1)
	go func() { done <- srv.ServeTransparent(ln, TransparentOptions{OriginalDst: dst.originalDst, Peek: true}) }()
	c := dial(t, ln.Addr().String())
	dst.mu.Lock()
	dst.dsts[c.LocalAddr().String()] = netip.MustParseAddrPort("203.0.113.1:443")
	dst.mu.Unlock()
	if !refusedByReset(c) {
		t.Error("not reset without a policy")
	}
	if ev := log.wait(t, "203.0.113.1", 443); ev.Decision != audit.DecisionDeny {
		t.Errorf("event %+v", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := <-done; err != nil {
		t.Errorf("ServeTransparent after Shutdown: %v", err)
	}
}
