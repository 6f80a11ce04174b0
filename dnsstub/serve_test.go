package dnsstub

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeUpstream is a UDP and TCP "resolver" on loopback that counts every
// message it gets. The stub is never told about it; it stands for the
// resolver a denied name must never reach.
type fakeUpstream struct {
	count atomic.Int64
}

func startUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	pc, l := listenLoopback(t)
	u := &fakeUpstream{}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			u.count.Add(1)
		}
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.count.Add(1)
			c.Close()
		}
	})
	t.Cleanup(func() { pc.Close(); l.Close(); wg.Wait() })
	return u
}

// served is a stub serving UDP and TCP on loopback (on two ports chosen
// by the kernel: the same number for both could already be taken for TCP).
type served struct {
	*stub
	udpAddr, tcpAddr string
}

func serveStub(t testing.TB, mod func(*Config)) *served {
	t.Helper()
	s := newStub(t, mod)
	pc, l := listenLoopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { errc <- s.ServeUDP(ctx, pc) }()
	go func() { errc <- s.ServeTCP(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		for i := 0; i < 2; i++ {
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("serve returned %v after cancel, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("serve did not stop after cancel")
			}
		}
	})
	return &served{stub: s, udpAddr: pc.LocalAddr().String(), tcpAddr: l.Addr().String()}
}

// listenLoopback opens a UDP and a TCP socket on loopback; t's cleanup
// closes both (again, if the code under test has closed them already).
func listenLoopback(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); l.Close() })
	return pc, l
}

// resolver is Go's own resolver, talking to the stub over network ("udp"
// or "tcp") and nothing else.
func (s *served) resolver(network string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		if network == "tcp" {
			return d.DialContext(ctx, network, s.tcpAddr)
		}
		return d.DialContext(ctx, network, s.udpAddr)
	}}
}

func TestLoopbackResolution(t *testing.T) {
	up := startUpstream(t)
	s := serveStub(t, nil)
	view, err := HostsView([]byte("203.0.113.10 db.example\n"), s.pol, s.pool)
	must(t, err)
	hostsEntry := ParseHosts(view)[0]
	for _, network := range []string{"udp", "tcp"} {
		r := s.resolver(network)
		// A hosts-file name asked over DNS gets the address of the hosts view.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		dbAddrs, err := r.LookupNetIP(ctx, "ip4", "db.example")
		cancel()
		if err != nil || len(dbAddrs) != 1 || dbAddrs[0] != hostsEntry.Addr || hostsEntry.Names[0] != "db.example" {
			t.Errorf("%s: db.example = %v %v, want %v as in the hosts view", network, dbAddrs, err, hostsEntry)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := r.LookupNetIP(ctx, "ip", "allowed.example")
		cancel()
		if err != nil {
			t.Fatalf("%s: allowed name: %v", network, err)
		}
		m, err := s.pool.Allocate("allowed.example")
		must(t, err)
		if len(addrs) != 2 || !containsAddr(addrs, m.V4) || !containsAddr(addrs, m.V6) {
			t.Errorf("%s: allowed.example = %v, want %v and %v", network, addrs, m.V4, m.V6)
		}
		for _, a := range addrs {
			if !s.pool.Contains(a) {
				t.Errorf("%s: %v is not synthetic", network, a)
			}
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		_, err = r.LookupNetIP(ctx, "ip", "evil.example")
		cancel()
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("%s: refused name: %v, want not found", network, err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		names, err := r.LookupAddr(ctx, m.V4.String())
		cancel()
		if err != nil || len(names) != 1 || names[0] != "allowed.example." {
			t.Errorf("%s: reverse of %v = %v %v", network, m.V4, names, err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		_, err = r.LookupTXT(ctx, "allowed.example")
		cancel()
		if err == nil {
			t.Errorf("%s: TXT for an allowed name succeeded", network)
		}
	}
	refused := 0
	for _, r := range s.rec.all() {
		if r.Name == "evil.example" {
			refused++
			if r.Reason != "not-allowed" || r.RCode != "NXDOMAIN" {
				t.Errorf("refusal %+v", r)
			}
		}
	}
	if refused < 2 { // A and AAAA at least once over each transport
		t.Errorf("%d refusals of evil.example reported, want at least 2", refused)
	}
	if n := up.count.Load(); n != 0 {
		t.Errorf("the upstream resolver saw %d messages, want none", n)
	}
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// roundTripTCP writes msgs on one connection and reads as many replies.
func roundTripTCP(t *testing.T, c net.Conn, msgs ...[]byte) []parsed {
	t.Helper()
	var out []byte
	for _, m := range msgs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(m)))
		out = append(out, m...)
	}
	must(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	var res []parsed
	for range msgs {
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			t.Fatalf("reading reply length: %v", err)
		}
		body := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatalf("reading reply: %v", err)
		}
		res = append(res, parseReply(t, body))
	}
	return res
}

func TestTCPPipelinedAndFormerr(t *testing.T) {
	s := serveStub(t, nil)
	c, err := net.Dial("tcp", s.tcpAddr)
	must(t, err)
	defer c.Close()
	bad := makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{id: 3, twoQuest: true})
	res := roundTripTCP(t, c,
		makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{id: 1}),
		makeQuery(t, "evil.example.", dnsmessage.TypeA, queryOpts{id: 2}),
		bad,
		makeQuery(t, "db.example.", dnsmessage.TypeAAAA, queryOpts{id: 4}))
	want := []dnsmessage.RCode{dnsmessage.RCodeSuccess, dnsmessage.RCodeNameError, dnsmessage.RCodeFormatError, dnsmessage.RCodeSuccess}
	for i, r := range res {
		if r.msg.ID != uint16(i+1) || r.msg.RCode != want[i] {
			t.Errorf("reply %d: id %d %v, want id %d %v", i, r.msg.ID, r.msg.RCode, i+1, want[i])
		}
	}
	got := s.rec.all()
	if len(got) != 2 || got[1].Reason != ReasonMalformed || got[1].Name != "allowed.example" || got[1].Transport != "tcp" {
		t.Errorf("refusals = %+v, want evil.example, then the two-question query by name", got)
	}
	if len(res[0].a) != 1 || len(res[3].a) != 1 || !res[3].a[0].Is6() {
		t.Errorf("answers %v %v", res[0].a, res[3].a)
	}
}

// expectClosed waits for the server to close c.
func expectClosed(t *testing.T, c net.Conn, within time.Duration, what string) {
	t.Helper()
	must(t, c.SetReadDeadline(time.Now().Add(within)))
	var b [64]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: connection still open after %v", what, within)
		}
		return
	}
}

func TestTCPBadLengthsAndSlowClients(t *testing.T) {
	s := serveStub(t, func(c *Config) { c.TCPIdleTimeout = 300 * time.Millisecond })
	cases := map[string][]byte{
		"length zero":      {0, 0},
		"length under 12":  {0, 5, 1, 2, 3, 4, 5},
		"length over 4096": {0xff, 0xff},
	}
	for name, b := range cases {
		c, err := net.Dial("tcp", s.tcpAddr)
		must(t, err)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c, 2*time.Second, name)
		c.Close()
	}
	// Stalled clients: half a length, a length with half the body, and
	// nothing at all. Each is dropped after the idle timeout, and while
	// they wait other clients are answered at once.
	stalled := [][]byte{{0}, {0, 40, 1, 2, 3}, nil}
	var conns []net.Conn
	for _, b := range stalled {
		c, err := net.Dial("tcp", s.tcpAddr)
		must(t, err)
		defer c.Close()
		if len(b) > 0 {
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, c)
	}
	start := time.Now()
	c, err := net.Dial("tcp", s.tcpAddr)
	must(t, err)
	defer c.Close()
	if r := roundTripTCP(t, c, makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{})); len(r[0].a) != 1 {
		t.Errorf("answer while others stall: %v", r[0].a)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("a good client waited %v behind stalled ones", d)
	}
	for _, sc := range conns {
		expectClosed(t, sc, 2*time.Second, "stalled client")
	}
	malformed := 0
	for _, r := range s.rec.all() {
		if r.Reason == ReasonMalformed && r.Transport == "tcp" {
			malformed++
		}
	}
	if malformed != len(cases) {
		t.Errorf("%d malformed TCP messages reported, want %d", malformed, len(cases))
	}
}

func TestTCPConnectionLimitLeavesUDPAlone(t *testing.T) {
	s := serveStub(t, func(c *Config) { c.MaxTCPConns = 2; c.TCPIdleTimeout = 5 * time.Second })
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", s.tcpAddr)
		must(t, err)
		defer c.Close()
		roundTripTCP(t, c, makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{})) // surely accepted
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", s.tcpAddr)
	must(t, err)
	defer extra.Close()
	expectClosed(t, extra, 2*time.Second, "connection over the limit")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.resolver("udp").LookupNetIP(ctx, "ip4", "db.example"); err != nil {
		t.Errorf("UDP while TCP is full: %v", err)
	}
	held[0].Close()
	// A slot is free again once the server notices.
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.Dial("tcp", s.tcpAddr)
		must(t, err)
		ok := tryQuery(t, c)
		c.Close()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no TCP slot came back after a client left")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tryQuery reports whether c answers one query.
func tryQuery(t *testing.T, c net.Conn) bool {
	q := makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{})
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		return false
	}
	var n [2]byte
	_, err := io.ReadFull(c, n[:])
	return err == nil
}

func TestUDPFloodAndOversized(t *testing.T) {
	s := serveStub(t, nil)
	probe, err := net.Dial("udp", s.udpAddr)
	must(t, err)
	defer probe.Close()
	// A datagram larger than any query: FORMERR with its ID.
	big := append(makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{id: 77}), make([]byte, 6000)...)
	if _, err := probe.Write(big); err != nil {
		t.Fatal(err)
	}
	must(t, probe.SetReadDeadline(time.Now().Add(2*time.Second)))
	buf := make([]byte, 2048)
	n, err := probe.Read(buf)
	if err != nil {
		t.Fatalf("oversized datagram: %v", err)
	}
	if p := parseReply(t, buf[:n]); p.msg.ID != 77 || p.msg.RCode != dnsmessage.RCodeFormatError {
		t.Errorf("oversized datagram: id %d %v, want 77 FORMERR", p.msg.ID, p.msg.RCode)
	}
	// A flood of junk and of distinct names from four sockets, never read
	// back, as fast as they can send: more than the server can read, so
	// the kernel drops datagrams, everyone's alike. The server must stay
	// within its fixed goroutines, TCP clients must still be answered at
	// once, and UDP must answer again as soon as the flood ends.
	// allowed.example is mapped first: the flood's distinct names fill the
	// /24 within milliseconds, after which new names get SERVFAIL (see
	// TestExhaustionIsServfailAndReported) but mapped ones keep working.
	_, err = s.pool.Allocate("allowed.example")
	must(t, err)
	before := runtime.NumGoroutine()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		c, err := net.Dial("udp", s.udpAddr)
		must(t, err)
		defer c.Close()
		var msgs [][]byte
		for i := 0; i < 500; i++ {
			msgs = append(msgs, []byte{1, 2, 3}, makeQuery(t, "n"+itoa(w*1000+i)+".wild.example.", dnsmessage.TypeA, queryOpts{}))
		}
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = c.Write(msgs[i%len(msgs)])
			}
		})
	}
	stopFlood := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopFlood()
	// The flood is on once the server has read a thousand of its
	// datagrams (however loaded the machine is); only then do the TCP
	// queries below say anything about service during a flood.
	for deadline := time.Now().Add(20 * time.Second); s.Stats().Queries < 1000; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d queries seen after 20s of flooding", s.Stats().Queries)
		}
	}
	tc, err := net.Dial("tcp", s.tcpAddr)
	must(t, err)
	defer tc.Close()
	for i := 0; i < 20; i++ {
		start := time.Now()
		if r := roundTripTCP(t, tc, makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{id: uint16(i)})); len(r[0].a) != 1 {
			t.Fatalf("TCP query %d during the flood: %v", i, r[0].a)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("TCP query %d took %v during the flood", i, d)
		}
	}
	if g := runtime.NumGoroutine(); g > before+4+1 { // the flood's senders, and the TCP connection's handler
		t.Errorf("%d goroutines during the flood, %d before: the server must not grow with the load", g, before)
	}
	stopFlood()
	client, err := net.Dial("udp", s.udpAddr)
	must(t, err)
	defer client.Close()
	start := time.Now()
	if !udpQueryRetrying(t, client, 4242, 10, 200*time.Millisecond) {
		t.Fatalf("no UDP answer after the flood (%+v)", s.Stats())
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("first UDP answer after the flood took %v", d)
	}
}

// udpQueryRetrying asks for allowed.example on c up to tries times, each
// waiting wait, and reports whether the answer with id came back.
func udpQueryRetrying(t *testing.T, c net.Conn, id uint16, tries int, wait time.Duration) bool {
	q := makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{id: id})
	buf := make([]byte, 2048)
	for i := 0; i < tries; i++ {
		if _, err := c.Write(q); err != nil {
			return false
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		for {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) == nil && m.ID == id && len(m.Answers) == 1 {
				return true
			}
		}
	}
	return false
}

func itoa(i int) string {
	var b []byte
	return string(appendInt(b, i))
}

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

func TestServeReturnsErrorWhenSocketClosedUnderIt(t *testing.T) {
	s := newStub(t, nil)
	pc, l := listenLoopback(t)
	errc := make(chan error, 2)
	go func() { errc <- s.ServeUDP(context.Background(), pc) }()
	go func() { errc <- s.ServeTCP(context.Background(), l) }()
	time.Sleep(20 * time.Millisecond)
	pc.Close()
	l.Close()
	for i := 0; i < 2; i++ {
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("serve on a socket closed by someone else = %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("serve did not return after its socket was closed")
		}
	}
}
