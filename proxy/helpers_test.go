package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/internal/socks5"
	"github.com/sandgate/sandgate/policy"
)

// testPolicy allows allowed.test and loopy.test by name, and 127.0.0.1 and
// ::1 as addresses (so that allowed.test, resolving to 127.0.0.1, passes the
// class check). loopy.test resolves to 127.0.0.5, which no IP entry covers.
var testPolicy = policy.Config{
	Allow: []string{"allowed.test", "loopy.test", "nowhere.test", "127.0.0.1", "::1"},
	Deny:  []string{"denied.test"},
}

func testResolver() *egress.StaticResolver {
	return &egress.StaticResolver{Hosts: map[string][]netip.Addr{
		"allowed.test": {netip.MustParseAddr("127.0.0.1")},
		"loopy.test":   {netip.MustParseAddr("127.0.0.5")},
		// nowhere.test is allowed but has no address: the lookup fails.
	}}
}

// eventLog is an audit sink for tests.
type eventLog struct {
	mu     sync.Mutex
	events []audit.Event
}

func (l *eventLog) Record(e audit.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]audit.Event(nil), l.events...)
}

// wait returns the first event for host:port, waiting up to 5s for it.
func (l *eventLog) wait(t *testing.T, host string, port uint16) audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range l.all() {
			if e.Host == host && e.Port == port {
				return e
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no audit event for %s:%d; have %+v", host, port, l.all())
	return audit.Event{}
}

type env struct {
	t         *testing.T
	srv       *Server
	gate      *egress.Gate
	resolver  *egress.StaticResolver
	log       *eventLog
	httpAddr  string
	socksAddr string
	served    chan error
}

type envOption func(*Options)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	pol, err := policy.New(testPolicy)
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	e := &env{t: t, resolver: testResolver(), log: &eventLog{}, served: make(chan error, 2)}
	e.gate = &egress.Gate{
		Policy:     pol,
		Resolver:   e.resolver,
		LocalAddrs: func() []netip.Addr { return nil },
	}
	o := Options{Gate: e.gate, Audit: e.log, Logf: t.Logf}
	for _, f := range opts {
		f(&o)
	}
	e.srv = New(o)
	hl := listen(t, "tcp4", "127.0.0.1:0")
	sl := listen(t, "tcp4", "127.0.0.1:0")
	e.httpAddr, e.socksAddr = hl.Addr().String(), sl.Addr().String()
	go func() { e.served <- e.srv.ServeHTTP(hl) }()
	go func() { e.served <- e.srv.ServeSOCKS(sl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		for i := 0; i < 2; i++ {
			select {
			case err := <-e.served:
				if err != nil {
					t.Errorf("Serve returned %v after Shutdown, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Serve did not return after Shutdown")
			}
		}
	})
	return e
}

func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// lookedUp reports whether the resolver was asked about name.
func (e *env) lookedUp(name string) bool {
	for _, n := range e.resolver.Lookups() {
		if strings.TrimSuffix(n, ".") == name {
			return true
		}
	}
	return false
}

// dial opens a client connection to addr with a deadline.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// echoServer accepts connections and echoes every byte back; at EOF it
// closes. It returns its port.
func echoServer(t *testing.T, network, addr string) uint16 {
	t.Helper()
	return serveConns(t, network, addr, func(c net.Conn) { io.Copy(c, c) })
}

// serveConns accepts connections on a new listener and runs handle for each
// in its own goroutine, closing the connection after; the test's cleanup
// waits for them. It returns the port.
func serveConns(t *testing.T, network, addr string, handle func(net.Conn)) uint16 {
	t.Helper()
	ln := listen(t, network, addr)
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// backend is an origin server that reports what it received.
func backend(t *testing.T) (*httptest.Server, uint16) {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-URI", r.RequestURI)
		var names []string
		for k := range r.Header {
			names = append(names, k)
		}
		w.Header().Set("X-Seen-Headers", strings.Join(names, ","))
		// "close" keeps net/http from replacing the header.
		w.Header().Set("Connection", "close, X-Backend-Hop")
		w.Header().Set("X-Backend-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		fmt.Fprintf(w, "%s %d", r.Method, len(body))
	}))
	t.Cleanup(ts.Close)
	return ts, uint16(ts.Listener.Addr().(*net.TCPAddr).Port)
}

// roundTrip writes raw to c and reads one response.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", strings.SplitN(raw, "\r\n", 2)[0], err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	resp.Body.Close()
	return resp, string(body)
}

// socksClient speaks the client side of SOCKS5 for tests.
type socksClient struct {
	t *testing.T
	c net.Conn
}

func (e *env) socks(t *testing.T) *socksClient {
	return &socksClient{t: t, c: dial(t, e.socksAddr)}
}

func (s *socksClient) write(b ...byte) {
	s.t.Helper()
	if _, err := s.c.Write(b); err != nil {
		s.t.Fatalf("socks write: %v", err)
	}
}

func (s *socksClient) read(n int) []byte {
	s.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(s.c, b); err != nil {
		s.t.Fatalf("socks read %d bytes: %v", n, err)
	}
	return b
}

// closed reports whether the server closed the connection (EOF or reset)
// without sending anything more.
func (s *socksClient) closed() bool {
	return peerClosed(s.c)
}

// peerClosed reports whether c's peer closed it within 5s without sending
// anything more.
func peerClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 || err == nil {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// socksRequestBytes encodes a request for cmd to host:port with the one
// SOCKS5 client.
func socksRequestBytes(cmd byte, host string, port uint16) []byte {
	b, err := socks5.AppendRequest(nil, cmd, host, port)
	if err != nil {
		panic(err)
	}
	return b
}

// connect runs a whole no-auth CONNECT handshake with the one SOCKS5 client
// and returns the reply code and the bound address.
func (s *socksClient) connect(host string, port uint16) (byte, netip.AddrPort) {
	s.t.Helper()
	s.c.SetDeadline(time.Now().Add(10 * time.Second))
	bound, err := socks5.Handshake(s.c, host, port, nil)
	var re *socks5.ReplyError
	switch {
	case errors.As(err, &re):
		return re.Code, bound
	case err != nil:
		s.t.Fatalf("SOCKS5 handshake for %s:%d: %v", host, port, err)
	}
	return repSucceeded, bound
}

// send writes a request and reads the whole reply, returning its code.
func (s *socksClient) send(cmd byte, host string, port uint16) byte {
	s.t.Helper()
	s.write(socksRequestBytes(cmd, host, port)...)
	return s.reply()
}

// reply reads one whole reply and returns its code.
func (s *socksClient) reply() byte {
	s.t.Helper()
	code, _, err := socks5.ReadReply(s.c)
	if err != nil {
		s.t.Fatalf("reading the SOCKS reply: %v", err)
	}
	return code
}

func portString(p uint16) string { return strconv.Itoa(int(p)) }

// echoCheck writes msg on c and expects it back.
func echoCheck(t *testing.T, c io.ReadWriter, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write through tunnel: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read through tunnel: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

func ipv6Available() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// tunnelsAreTCP waits for an open tunnel and reports whether every open
// tunnel relays between two *net.TCPConn, the condition for io.Copy to
// splice.
func (e *env) tunnelsAreTCP(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var tunnels []*tunnel
		e.srv.mu.Lock()
		for c := range e.srv.conns {
			if tn, ok := c.(*tunnel); ok {
				tunnels = append(tunnels, tn)
			}
		}
		e.srv.mu.Unlock()
		if len(tunnels) > 0 {
			for _, tn := range tunnels {
				_, c := tn.client.(*net.TCPConn)
				_, u := tn.upstream.(*net.TCPConn)
				if !c || !u {
					t.Fatalf("tunnel relays %T <-> %T; splicing needs *net.TCPConn on both sides", tn.client, tn.upstream)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no open tunnel")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
