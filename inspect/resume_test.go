package inspect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSessionsResume: a client that keeps its TLS sessions resumes its
// second connection to an inspected host (the host's TLS configuration,
// and so its ticket keys, are shared by its connections), and the second
// upstream connection resumes the first one's session instead of
// verifying the upstream's certificate again.
func TestSessionsResume(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.leaf(t, testHost)
	var mu sync.Mutex
	var upstreamResumed []bool
	up := startUpstream(t, &cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamResumed = append(upstreamResumed, r.TLS != nil && r.TLS.DidResume)
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	env := startIntercept(t, testHost, 443, up, ca.pool, nil)
	cache := tls.NewLRUClientSessionCache(8)
	var clientResumed []bool
	for i := range 3 {
		raw, err := net.DialTimeout("tcp", env.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(raw, &tls.Config{ServerName: testHost, RootCAs: env.pool, ClientSessionCache: cache, NextProtos: []string{"http/1.1"}})
		fmt.Fprintf(tc, "GET /x%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", i, testHost)
		body, err := io.ReadAll(tc)
		tc.Close()
		if err != nil || !strings.HasPrefix(string(body), "HTTP/1.1 200") || !strings.HasSuffix(string(body), "ok") {
			t.Fatalf("connection %d: %v %q", i, err, body)
		}
		clientResumed = append(clientResumed, tc.ConnectionState().DidResume)
	}
	if clientResumed[0] || !clientResumed[1] || !clientResumed[2] {
		t.Errorf("client connections resumed %v, want [false true true]", clientResumed)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(upstreamResumed) != 3 || upstreamResumed[0] || !upstreamResumed[1] || !upstreamResumed[2] {
		t.Errorf("upstream connections resumed %v, want [false true true]", upstreamResumed)
	}
}

// TestUpstreamSessionsPerPool: a session verified against one trust pool
// is not offered under another pool, nor to another port of the same
// name; and an Authority given a new pool on every connection stops
// caching rather than growing without bound.
func TestUpstreamSessionsPerPool(t *testing.T) {
	a, err := NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := x509.NewCertPool(), x509.NewCertPool()
	st := &tls.ClientSessionState{}
	a.upstreamSessions(p1, 443).Put("upstream.test", st)
	if got, ok := a.upstreamSessions(p1, 443).Get("upstream.test"); !ok || got != st {
		t.Errorf("same pool and port: %v %v", got, ok)
	}
	if _, ok := a.upstreamSessions(p2, 443).Get("upstream.test"); ok {
		t.Error("another pool got the session")
	}
	if _, ok := a.upstreamSessions(p1, 8443).Get("upstream.test"); ok {
		t.Error("another port got the session")
	}
	if _, ok := a.upstreamSessions(nil, 443).Get("upstream.test"); ok {
		t.Error("the system pool got the session")
	}
	for range 2 * maxSessionPools {
		a.upstreamSessions(x509.NewCertPool(), 443)
	}
	if n := len(a.sessions); n != maxSessionPools {
		t.Errorf("%d pools kept, want at most %d", n, maxSessionPools)
	}
	if c := a.upstreamSessions(x509.NewCertPool(), 443); c != nil {
		t.Errorf("a pool past the bound got a cache: %v", c)
	}
}

// TestUpstreamBadCertificateNotResumed: after a good upstream session, an
// upstream that now presents a certificate the pool does not trust is
// still refused with 502 upstream-tls on a new client connection (a fresh
// server issues no ticket the old session fits, so nothing resumes past
// verification).
func TestUpstreamBadCertificateNotResumed(t *testing.T) {
	ca := newTestCA(t)
	good := ca.leaf(t, testHost)
	other := newTestCA(t)
	bad := other.leaf(t, testHost)
	goodAddr := startUpstream(t, &good, echoHandler())
	badAddr := startUpstream(t, &bad, echoHandler())
	var mu sync.Mutex
	target := goodAddr
	env := startIntercept(t, testHost, 443, "", ca.pool, func(c *Config) {
		c.Dial = func(ctx context.Context) (net.Conn, error) {
			mu.Lock()
			to := target
			mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, "tcp", to)
		}
	})
	c := env.client(t, false)
	if resp, body := get(t, c, "GET", "https://"+testHost+"/a"); resp.StatusCode != 200 {
		t.Fatalf("good upstream: %d %s", resp.StatusCode, body)
	}
	c.CloseIdleConnections()
	mu.Lock()
	target = badAddr
	mu.Unlock()
	resp, body := get(t, c, "GET", "https://"+testHost+"/b")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Proxy-Error") != ReasonUpstreamTLS {
		t.Errorf("bad upstream after a good session: %d %q %s", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body)
	}
}

// TestCopyBuffers: the copy buffers are copyBufferSize long, and a buffer
// of another size is not kept.
func TestCopyBuffers(t *testing.T) {
	var p copyBuffers
	b := p.Get()
	if len(b) != copyBufferSize {
		t.Fatalf("Get: %d bytes, want %d", len(b), copyBufferSize)
	}
	p.Put(b[:10])
	if b2 := p.Get(); len(b2) != copyBufferSize {
		t.Fatalf("Get after Put of a resliced buffer: %d bytes", len(b2))
	}
	p.Put(make([]byte, 100)) // dropped: any later Get still gets a full buffer
	if b3 := p.Get(); len(b3) != copyBufferSize {
		t.Fatalf("Get after Put of a foreign buffer: %d bytes", len(b3))
	}
}
