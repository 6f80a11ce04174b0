package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

func FuzzSOCKSRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 1, 192, 0, 2, 1, 0, 80})
	f.Add(append([]byte{5, 1, 0, 3, 6}, "a.test\x01\xbb"...))
	f.Add(append(append([]byte{5, 1, 0, 4}, net.ParseIP("2001:db8::1")...), 0, 80))
	f.Add([]byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 1, 0, 9})
	f.Add([]byte{5, 1, 0, 3, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		req, err := readSOCKSRequest(r)
		consumed := len(data) - r.Len()
		if consumed > 4+1+255+2 {
			t.Fatalf("read %d bytes, more than any request holds", consumed)
		}
		if err != nil {
			var se *socksError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a socksError", err)
			}
			return
		}
		// What was parsed must encode back to exactly the bytes read
		// (apart from the reserved byte, which is ignored).
		enc := []byte{socksVersion, req.cmd, data[2], req.atyp}
		switch req.atyp {
		case atypIPv4:
			a, perr := netip.ParseAddr(req.host)
			if perr != nil || !a.Is4() {
				t.Fatalf("IPv4 request with host %q", req.host)
			}
			v := a.As4()
			enc = append(enc, v[:]...)
		case atypIPv6:
			a, perr := netip.ParseAddr(req.host)
			if perr != nil || a.Is4() {
				t.Fatalf("IPv6 request with host %q", req.host)
			}
			v := a.As16()
			enc = append(enc, v[:]...)
		case atypDomain:
			if len(req.host) == 0 || len(req.host) > 255 {
				t.Fatalf("domain of length %d accepted", len(req.host))
			}
			enc = append(append(enc, byte(len(req.host))), req.host...)
		default:
			t.Fatalf("address type %d accepted", req.atyp)
		}
		enc = binary.BigEndian.AppendUint16(enc, req.port)
		if !bytes.Equal(enc, data[:consumed]) {
			t.Fatalf("parsed %+v from %v, which encodes as %v", req, data[:consumed], enc)
		}
		if req.cmd == cmdConnect && req.port == 0 {
			t.Fatalf("CONNECT to port 0 accepted")
		}
	})
}

func FuzzSOCKSGreeting(f *testing.F) {
	f.Add([]byte{5, 1, 0})
	f.Add([]byte{5, 2, 0, 2, 1, 4, 'u', 's', 'e', 'r', 4, 'p', 'a', 's', 's'})
	f.Add([]byte{5, 0})
	f.Add([]byte{4, 1, 0})
	f.Add([]byte{5, 1, 2, 1, 0, 0})
	f.Add([]byte{5, 1, 2, 2, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		methods, err := readSOCKSGreeting(r)
		if err != nil {
			var se *socksError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a socksError", err)
			}
			return
		}
		if len(methods) == 0 || len(methods) != int(data[1]) || !bytes.Equal(methods, data[2:2+len(methods)]) {
			t.Fatalf("methods %v from %v", methods, data)
		}
		off := 2 + len(methods)
		user, pass, err := readSOCKSAuth(r)
		if err != nil {
			var se *socksError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a socksError", err)
			}
			return
		}
		want := append([]byte{1, byte(len(user))}, user...)
		want = append(append(want, byte(len(pass))), pass...)
		if !bytes.Equal(want, data[off:off+len(want)]) {
			t.Fatalf("auth parsed as %q/%q from %v", user, pass, data[off:])
		}
	})
}

// memConn is a client connection whose input is fixed bytes; what the server
// writes is discarded. Reads after the input return EOF.
type memConn struct {
	r    *bytes.Reader
	keep bool          // keep what the server writes in out
	hold bool          // after the input, reads wait for Close (or the read deadline) instead of EOF
	rdl  time.Time     // read deadline, guarded by mu
	wake chan struct{} // closed when rdl changes, guarded by mu
	// written, when not nil, is closed by the first Write; reads wait for
	// it, as a server waits for the request before answering.
	written     chan struct{}
	writtenOnce sync.Once
	out         bytes.Buffer // guarded by mu
	mu          sync.Mutex
	closed      chan struct{}
	once        sync.Once
}

func newMemConn(data []byte) *memConn {
	return &memConn{r: bytes.NewReader(data), closed: make(chan struct{})}
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.written != nil {
		select {
		case <-c.written:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	for {
		c.mu.Lock()
		n, err := c.r.Read(p)
		dl, wake := c.rdl, c.wake
		if wake == nil {
			wake = make(chan struct{})
			c.wake = wake
		}
		c.mu.Unlock()
		if err != io.EOF || !c.hold {
			return n, err
		}
		var timeout <-chan time.Time
		var tm *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			tm = time.NewTimer(d)
			timeout = tm.C
		}
		select {
		case <-c.closed:
			return 0, io.EOF
		case <-wake:
		case <-timeout:
		}
		if tm != nil {
			tm.Stop()
		}
	}
}
func (c *memConn) Write(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	if c.written != nil && len(p) > 0 {
		c.writtenOnce.Do(func() { close(c.written) })
	}
	if c.keep {
		c.mu.Lock()
		c.out.Write(p)
		c.mu.Unlock()
	}
	return len(p), nil
}

func (c *memConn) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}
func (c *memConn) Close() error                { c.once.Do(func() { close(c.closed) }); return nil }
func (c *memConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3128} }
func (c *memConn) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *memConn) SetDeadline(time.Time) error { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
	return nil
}
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// chanListener hands out connections sent on ch.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3128} }

// cannedResponse is what every upstream says in the fuzz servers.
const cannedResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\nok"

// fuzzServer serves one protocol on a chanListener with a gate whose
// connections are in memory: each upstream answers cannedResponse whatever
// it is sent.
func fuzzServer(f testing.TB, socks bool) *chanListener {
	pol, err := policy.New(testPolicy)
	if err != nil {
		f.Fatal(err)
	}
	gate := &egress.Gate{
		Policy:     pol,
		Resolver:   testResolver(),
		LocalAddrs: func() []netip.Addr { return nil },
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == "127.0.0.1:1" {
				return nil, errors.New("fuzz: connection refused")
			}
			up := newMemConn([]byte(cannedResponse))
			up.written = make(chan struct{})
			return up, nil
		},
	}
	s := New(Options{Gate: gate, Limits: Limits{HeaderTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second}})
	ln := newChanListener()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if socks {
			s.ServeSOCKS(ln)
		} else {
			s.ServeHTTP(ln)
		}
	}()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	return ln
}

// serveBytes feeds data to the server as one client connection and waits
// for the server to close it.
func serveBytes(t *testing.T, ln *chanListener, data []byte) *memConn {
	c := newMemConn(data)
	select {
	case ln.ch <- c:
	case <-time.After(5 * time.Second):
		t.Fatal("server did not accept")
	}
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("server did not finish with input %q", data)
	}
	return c
}

func FuzzHTTPRequest(f *testing.F) {
	for _, s := range []string{
		"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		"GET http://denied.test/ HTTP/1.1\r\nHost: x\r\n\r\nGET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n",
		"CONNECT [::1]:443 HTTP/1.1\r\n\r\nxyz",
		"POST http://allowed.test/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		"GET https://allowed.test/ HTTP/1.0\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://loopy.test:8080/x?y HTTP/1.1\r\nHost: a\r\nConnection: close, Host\r\n\r\n",
		"GET http://allowed.test/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic !!\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	ln := fuzzServer(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		serveBytes(t, ln, data)
	})
}

func FuzzSOCKSSession(f *testing.F) {
	noAuth := []byte{5, 1, 0}
	f.Add(append(append([]byte{}, noAuth...), socksRequestBytes(cmdConnect, "allowed.test", 443)...))
	f.Add(append(append([]byte{}, noAuth...), socksRequestBytes(cmdConnect, "denied.test", 443)...))
	f.Add(append(append([]byte{}, noAuth...), socksRequestBytes(cmdConnect, "127.0.0.1", 80)...))
	f.Add(append(append([]byte{}, noAuth...), socksRequestBytes(cmdUDP, "::1", 80)...))
	f.Add([]byte{5, 1, 2, 1, 1, 'u', 1, 'p', 5, 1, 0, 3, 1, 'x', 0, 80})
	ln := fuzzServer(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		serveBytes(t, ln, data)
	})
}

func FuzzResponseHead(f *testing.F) {
	f.Add([]byte(cannedResponse))
	f.Add([]byte("HTTP/1.1 100 Continue\r\nConnection: a\r\n\r\nHTTP/1.1 200 OK\nConnection: b,,c\n\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nconnection:\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nConnection: a,\r\n b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tokens, done := parseConnectionTokens(data)
		for _, tok := range tokens {
			if tok == "" || strings.ContainsAny(tok, ",\n") || strings.TrimSpace(tok) != tok {
				t.Fatalf("bad token %q from %q", tok, data)
			}
		}
		// The same bytes one at a time give the same answer, examining each
		// byte once.
		var h headScanner
		for i := range data {
			h.feed(data[i : i+1])
		}
		if strings.Join(h.tokens, "\n") != strings.Join(tokens, "\n") || h.done != done {
			t.Fatalf("byte by byte: %q %v; whole: %q %v; input %q", h.tokens, h.done, tokens, done, data)
		}
		if h.scanned > len(data) {
			t.Fatalf("examined %d bytes of %d", h.scanned, len(data))
		}
	})
}

func TestParseConnectionTokens(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		done bool
	}{
		{cannedResponse, []string{"close", "X-A"}, true},
		{"HTTP/1.1 100 Continue\r\nConnection: a\r\n\r\nHTTP/1.1 200 OK\nconnection: b,,c\n\nbody", []string{"a", "b", "c"}, true},
		{"HTTP/1.1 200 OK\r\nConnection: a\r\n", []string{"a"}, false},
		{"HTTP/1.1 103 Early\r\n\r\n", nil, false},
		{"", nil, false},
		{"HTTP/1.1 200 OK\r\nConnection: a,\r\n\tb\r\nX: c\r\n c\r\n\r\n", []string{"a", "b"}, true},
	}
	for _, tt := range tests {
		got, done := parseConnectionTokens([]byte(tt.in))
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || done != tt.done {
			t.Errorf("parseConnectionTokens(%q) = %q, %v; want %q, %v", tt.in, got, done, tt.want, tt.done)
		}
	}
}

// TestInMemoryConnections runs the fuzz servers' set-up with known input:
// it checks that the forwarding and tunnel paths work over connections that
// are not TCP, as the fuzz targets rely on.
func TestInMemoryConnections(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		not      []string
	}{
		{
			name: "forward",
			in:   "GET http://allowed.test/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
			want: []string{"HTTP/1.1 200 OK", "\r\n\r\nok"},
			not:  []string{"X-A:"},
		},
		{
			name: "tunnel",
			in:   "CONNECT allowed.test:443 HTTP/1.1\r\n\r\nxyz",
			want: []string{"HTTP/1.1 200 Connection established\r\n\r\n" + cannedResponse},
		},
		{
			name: "dial failure",
			in:   "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n",
			want: []string{"HTTP/1.1 502 "},
		},
		{
			name: "pipelined, each decided",
			in:   "GET http://denied.test/ HTTP/1.1\r\nHost: x\r\n\r\nGET http://allowed.test/ HTTP/1.1\r\nHost: x\r\n\r\n",
			want: []string{"HTTP/1.1 403 ", "HTTP/1.1 200 OK"},
		},
	}
	ln := fuzzServer(t, false)
	for _, tt := range tests {
		c := newMemConn([]byte(tt.in))
		c.keep, c.hold = true, true
		ln.ch <- c
		deadline := time.Now().Add(5 * time.Second)
		for {
			out := c.output()
			missing := ""
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					missing = w
				}
			}
			if missing == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: output lacks %q:\n%s", tt.name, missing, out)
			}
			time.Sleep(2 * time.Millisecond)
		}
		c.Close()
		out := c.output()
		for _, n := range tt.not {
			if strings.Contains(out, n) {
				t.Errorf("%s: output has %q:\n%s", tt.name, n, out)
			}
		}
	}
}
