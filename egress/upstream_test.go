package egress

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/policy"
)

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct {
		in, scheme, addr, user, pass, err string
	}{
		{in: "http://proxy.corp:3128", scheme: "http", addr: "proxy.corp:3128"},
		{in: "proxy.corp:8080", scheme: "http", addr: "proxy.corp:8080"},
		{in: "http://u:p%40ss@[2001:db8::1]:3128/", scheme: "http", addr: "[2001:db8::1]:3128", user: "u", pass: "p@ss"},
		{in: "socks5://a:b@192.0.2.1:1080", scheme: "socks5", addr: "192.0.2.1:1080", user: "a", pass: "b"},
		{in: "SOCKS5H://192.0.2.1:1080", scheme: "socks5", addr: "192.0.2.1:1080"},
		{in: "", err: "empty"},
		{in: "https://proxy:443", err: "not supported"},
		{in: "http://proxy", err: "needs a host and a port"},
		{in: "http://proxy:0", err: "not 1-65535"},
		{in: "http://proxy:3128/path", err: "path"},
		{in: "http://:secretpw@proxy:3128", err: "without a user name"},
		{in: "http://u:secretpw@proxy:99999", err: "not 1-65535"},
		{in: "http://u:secretpw@pro xy:1", err: "not a URL"},
	} {
		up, err := ParseUpstream(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseUpstream(%q) = %+v, %v; want an error with %q", tc.in, up, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secretpw") {
				t.Errorf("ParseUpstream(%q) error repeats the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || up.Scheme != tc.scheme || up.Addr != tc.addr || up.User != tc.user || up.Password != tc.pass {
			t.Errorf("ParseUpstream(%q) = %+v, %v", tc.in, up, err)
			continue
		}
		if s := up.String(); strings.Contains(s, "@") || s != tc.scheme+"://"+tc.addr {
			t.Errorf("String() = %q, want it without credentials", s)
		}
	}
	for in, want := range map[string]UpstreamSend{"": SendName, "name": SendName, "Address": SendAddress} {
		if got, err := ParseUpstreamSend(in); err != nil || got != want {
			t.Errorf("ParseUpstreamSend(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseUpstreamSend("ip"); err == nil || !strings.Contains(err.Error(), `"address"`) {
		t.Errorf("ParseUpstreamSend(ip) = %v; want an error naming the choices", err)
	}
}

func TestUpstreamFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if up, err := UpstreamFromEnv(env(nil)); up != nil || err != nil {
		t.Errorf("no variables = %v, %v; want nil, nil", up, err)
	}
	up, err := UpstreamFromEnv(env(map[string]string{
		"HTTP_PROXY": "http://192.0.2.9:80", "https_proxy": "http://u:p@192.0.2.8:3128",
		"no_proxy": " .corp.test, 198.51.100.0/24,localhost:8080,,",
	}))
	if err != nil || up.Addr != "192.0.2.8:3128" || up.User != "u" || len(up.NoProxy) != 3 || up.From != "https_proxy" {
		t.Fatalf("UpstreamFromEnv = %+v, %v; want https_proxy first (and named in From) and three NO_PROXY entries", up, err)
	}
	if up, err := UpstreamFromEnv(env(map[string]string{"http_proxy": "192.0.2.9:80", "ALL_PROXY": "socks5://192.0.2.10:1080"})); err != nil || up.From != "ALL_PROXY" || up.String() != "socks5://192.0.2.10:1080" {
		t.Errorf("ALL_PROXY before http_proxy: %+v, %v", up, err)
	}
	if up, err := ParseUpstream("http://192.0.2.9:80"); err != nil || up.From != "" {
		t.Errorf("a URL given directly has From %q (%v), want none", up.From, err)
	}
	for _, tc := range []struct {
		host string
		port uint16
		want bool
	}{
		{"corp.test", 443, true}, {"git.corp.test.", 443, true}, {"notcorp.test", 443, false},
		{"198.51.100.7", 22, true}, {"198.51.100.300", 22, false}, {"203.0.113.1", 22, false},
		{"localhost", 8080, true}, {"localhost", 80, false}, {"example.com", 443, false},
	} {
		if got := up.Bypass(tc.host, tc.port); got != tc.want {
			t.Errorf("Bypass(%s, %d) = %v, want %v", tc.host, tc.port, got, tc.want)
		}
	}
	if !(&Upstream{NoProxy: []string{"*"}}).Bypass("anything.test", 1) {
		t.Error(`NO_PROXY "*" does not bypass everything`)
	}
	if _, err := UpstreamFromEnv(env(map[string]string{"ALL_PROXY": "ftp://u:hidden@x:1"})); err == nil ||
		!strings.Contains(err.Error(), "$ALL_PROXY") || strings.Contains(err.Error(), "hidden") {
		t.Errorf("bad ALL_PROXY = %v; want an error naming the variable, not the password", err)
	}
}

func TestReadConnectReply(t *testing.T) {
	for _, tc := range []struct {
		in     string
		code   int
		reason string
		err    string
	}{
		{in: "HTTP/1.1 200 Connection established\r\n\r\n", code: 200, reason: "Connection established"},
		{in: "HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n", code: 407, reason: "Proxy Authentication Required"},
		{in: "HTTP/1.1 200\n\n", code: 200},
		{in: "HTTP/1.1 403 bad\x1b[31m\r\n\r\n", code: 403, reason: `bad\x1b[31m`},
		{in: "SSH-2.0-x\r\n\r\n", err: "not an HTTP/1.x reply"},
		{in: "HTTP/1.1 2000 x\r\n\r\n", err: "bad status code"},
		{in: "HTTP/1.1 200 ok\r\nVia: x\r\n", err: "reading the reply head"},
		{in: "HTTP/1.1 200 ok\r\nX: " + strings.Repeat("a", 20000) + "\r\n\r\n", err: "longer than"},
	} {
		code, reason, err := ReadConnectReply(bufio.NewReaderSize(strings.NewReader(tc.in), 4096))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ReadConnectReply(%.40q) = %d, %v; want error %q", tc.in, code, err, tc.err)
			}
			continue
		}
		if err != nil || code != tc.code || reason != tc.reason {
			t.Errorf("ReadConnectReply(%.40q) = %d, %q, %v; want %d, %q", tc.in, code, reason, err, tc.code, tc.reason)
		}
	}
}

// FuzzReadConnectReply: any reply head from an upstream is either refused
// with an error or gives a 3-digit code and a one-line reason, and never
// reads past the head's limit.
func FuzzReadConnectReply(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 407 Auth\r\nProxy-Authenticate: Basic\r\n\r\nrest"))
	f.Add([]byte("HTTP/1.1 200 ok\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &countingReader{r: strings.NewReader(string(b))}
		code, reason, err := ReadConnectReply(bufio.NewReaderSize(r, 4096))
		if r.n > upstreamHeadMax+4096 {
			t.Fatalf("read %d bytes, more than the head limit", r.n)
		}
		if err != nil {
			return
		}
		if code < 100 || code > 999 || strings.ContainsAny(reason, "\r\n\x00") {
			t.Fatalf("code %d reason %q from %q", code, reason, b)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// socksUpstream is a tiny SOCKS5 proxy (RFC 1928/1929) for the tests: it
// wants user/pass, records each request's address type and host, and
// connects svc.test (or any literal) to the echo server.
type socksUpstream struct {
	ln   net.Listener
	echo string
	mu   sync.Mutex
	reqs []string
}

func (s *socksUpstream) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	if _, err := io.ReadFull(c, buf[:3]); err != nil || buf[0] != 5 || buf[2] != 2 {
		c.Write([]byte{5, 0xff})
		return
	}
	c.Write([]byte{5, 2})
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return
	}
	user := make([]byte, buf[1])
	io.ReadFull(c, user)
	io.ReadFull(c, buf[:1])
	pass := make([]byte, buf[0])
	io.ReadFull(c, pass)
	if string(user) != "carol" || string(pass) != "pw" {
		c.Write([]byte{1, 1})
		return
	}
	c.Write([]byte{1, 0})
	if _, err := io.ReadFull(c, buf[:4]); err != nil {
		return
	}
	var host string
	switch buf[3] {
	case 1:
		io.ReadFull(c, buf[:4])
		host = "ip:" + netip.AddrFrom4([4]byte(buf[:4])).String()
	case 3:
		io.ReadFull(c, buf[:1])
		name := make([]byte, buf[0])
		io.ReadFull(c, name)
		host = "name:" + string(name)
	default:
		return
	}
	io.ReadFull(c, buf[:2])
	port := binary.BigEndian.Uint16(buf[:2])
	s.mu.Lock()
	s.reqs = append(s.reqs, host+":"+strconv.Itoa(int(port)))
	s.mu.Unlock()
	if host == "name:refused.test" {
		c.Write([]byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	t, err := net.Dial("tcp", s.echo)
	if err != nil {
		c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	defer t.Close()
	c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 0})
	c.SetDeadline(time.Time{})
	go func() { io.Copy(t, c); t.Close() }()
	io.Copy(c, t)
}

func TestUpstreamSOCKS5(t *testing.T) {
	port := echoServer(t)
	ps := strconv.Itoa(int(port))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &socksUpstream{ln: ln, echo: "127.0.0.1:" + ps}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.serve(c) }()
		}
	}()
	up, err := ParseUpstream("socks5://carol:pw@" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := &StaticResolver{Hosts: map[string][]netip.Addr{"svc.test": addrs("127.0.0.1")}}
	g := &Gate{Policy: mustPolicy(t, policy.Config{Allow: []string{"svc.test:" + ps, "refused.test:" + ps, "127.0.0.1:" + ps}}),
		Resolver: r, DialTimeout: 5 * time.Second, Upstream: up}
	ctx := context.Background()
	conn, _, _, err := g.Connect(ctx, "svc.test", port)
	if err != nil {
		t.Fatalf("by name through SOCKS5: %v", err)
	}
	echoThrough(t, conn)
	conn.Close()
	_, _, _, err = g.Connect(ctx, "refused.test", port)
	if err == nil || !strings.Contains(err.Error(), "not allowed by ruleset") || !strings.Contains(err.Error(), up.String()) {
		t.Errorf("a SOCKS5 refusal = %v; want the reply named with the upstream", err)
	}
	byAddr := *up
	byAddr.Send = SendAddress
	g.Upstream = &byAddr
	conn, _, _, err = g.Connect(ctx, "svc.test", port)
	if err != nil {
		t.Fatalf("by address through SOCKS5: %v", err)
	}
	echoThrough(t, conn)
	conn.Close()
	wrong := *up
	wrong.Password = "nope"
	g.Upstream = &wrong
	if _, _, _, err = g.Connect(ctx, "svc.test", port); err == nil || !strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), "nope") {
		t.Errorf("wrong SOCKS5 password = %v; want authentication failed, without the password", err)
	}
	s.mu.Lock()
	got := strings.Join(s.reqs, " ")
	s.mu.Unlock()
	if want := "name:svc.test:" + ps + " name:refused.test:" + ps + " ip:127.0.0.1:" + ps; got != want {
		t.Errorf("SOCKS5 requests = %q, want %q (domain by name, the checked IP by address)", got, want)
	}
	if len(r.Lookups()) != 1 {
		t.Errorf("lookups = %v; want one, for the address mode only", r.Lookups())
	}
}

// echoServer listens on 127.0.0.1 and echoes every connection until the
// test ends.
func echoServer(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// echoThrough checks that conn carries bytes both ways.
func echoThrough(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through the upstream = %q, %v", buf, err)
	}
}
