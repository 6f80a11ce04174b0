package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/decide"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/inspect"
	"github.com/sandgate/sandgate/policy"
)

// publicCA is a throwaway CA standing for the public trust of the fake
// internet (the upstreams' certificates).
type publicCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPublicCA(t *testing.T) *publicCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "proxy test public CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &publicCA{cert: cert, key: key, pool: pool}
}

// leaf signs a server certificate for names.
func (ca *publicCA) leaf(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// seen is what an upstream was sent.
type seen struct {
	mu   sync.Mutex
	reqs []string // "METHOD host path auth"
}

func (s *seen) add(r *http.Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, fmt.Sprintf("%s %s %s %s", r.Method, r.Host, r.URL.RequestURI(), r.Header.Get("Authorization")))
	s.mu.Unlock()
}

func (s *seen) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// inspectEnv is a proxy Server whose gate sends every connection to port
// 443 to one loopback TLS upstream (certificate for svc.test and
// other.test from a test public CA, h2 and HTTP/1.1) and every other
// connection to one loopback plain-HTTP upstream. The names resolve to
// documentation addresses, as on the fake internet.
type inspectEnv struct {
	*env
	ca       *publicCA
	auth     *inspect.Authority
	client   *x509.CertPool // trusts the run CA
	upstream seen
	dials    atomic.Int64
}

type inspectOption func(*Options, *inspectEnv)

func withoutAuthority() inspectOption {
	return func(o *Options, _ *inspectEnv) { o.Authority = nil }
}

func withRoots(p *x509.CertPool) inspectOption {
	return func(o *Options, _ *inspectEnv) { o.UpstreamRoots = p }
}

func withSecrets(s Secrets) inspectOption {
	return func(o *Options, _ *inspectEnv) { o.Secrets = s }
}

func newInspectEnv(t *testing.T, cfg policy.Config, opts ...inspectOption) *inspectEnv {
	t.Helper()
	return newInspectEnvWith(t, cfg, nil, opts...)
}

// newInspectEnvWith is newInspectEnv with the upstreams serving h (nil:
// the recording echo handler).
func newInspectEnvWith(t *testing.T, cfg policy.Config, h http.Handler, opts ...inspectOption) *inspectEnv {
	t.Helper()
	pol, err := policy.New(cfg)
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	ie := &inspectEnv{ca: newPublicCA(t)}
	ie.auth, err = inspect.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	ie.client = x509.NewCertPool()
	ie.client.AddCert(ie.auth.Certificate())

	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ie.upstream.add(r)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
		fmt.Fprintf(w, "%s %s %s %d", r.Proto, r.Method, r.URL.Path, len(body))
		if strings.HasPrefix(r.URL.Path, "/echo") {
			fmt.Fprintf(w, " %s", r.Header.Get("Authorization"))
		}
	})
	if h == nil {
		h = echo
	}
	cert := ie.ca.leaf(t, "svc.test", "other.test")
	tlsAddr := serveHTTP(t, &cert, h)
	plainAddr := serveHTTP(t, nil, h)

	a := netip.MustParseAddr
	resolver := &egress.StaticResolver{Hosts: map[string][]netip.Addr{
		"svc.test":       {a("203.0.113.10")},
		"other.test":     {a("203.0.113.11")},
		"plain.test":     {a("203.0.113.12")},
		"elsewhere.test": {a("203.0.113.13")},
	}}
	ie.env = newEnv(t, func(o *Options) {
		o.Gate = &egress.Gate{
			Policy:     pol,
			Resolver:   resolver,
			LocalAddrs: func() []netip.Addr { return nil },
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				ie.dials.Add(1)
				to := plainAddr
				if strings.HasSuffix(addr, ":443") {
					to = tlsAddr
				}
				var d net.Dialer
				return d.DialContext(ctx, "tcp", to)
			},
		}
		o.Authority = ie.auth
		o.UpstreamRoots = ie.ca.pool
		for _, f := range opts {
			f(o, ie)
		}
	})
	return ie
}

// serveHTTP serves h on loopback, over TLS (h2 and HTTP/1.1) with cert,
// or in plain text when cert is nil; it returns the address.
func serveHTTP(t *testing.T, cert *tls.Certificate, h http.Handler) string {
	t.Helper()
	l := listen(t, "tcp4", "127.0.0.1:0")
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &protos, ErrorLog: log.New(io.Discard, "", 0)}
	t.Cleanup(func() { srv.Close() })
	if cert == nil {
		go srv.Serve(l)
	} else {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"h2", "http/1.1"}}
		go srv.ServeTLS(l, "", "")
	}
	return l.Addr().String()
}

// httpClient goes through the proxy at proxyURL and trusts roots.
func httpClient(t *testing.T, proxyURL string, roots *x509.CertPool) *http.Client {
	t.Helper()
	u, err := url.Parse(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		Proxy:             http.ProxyURL(u),
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// do sends one request and returns the response and its body.
func do(t *testing.T, c *http.Client, method, rawURL, auth string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if method != "GET" && method != "HEAD" {
		body = strings.NewReader("body")
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp, string(got)
}

// eventFor waits for the event of a request method+path to host.
func (l *eventLog) eventFor(t *testing.T, host, method, path string) audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range l.all() {
			if e.Host == host && e.Method == method && e.Path == path {
				return e
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no audit event for %s %s%s; have %+v", method, host, path, l.all())
	return audit.Event{}
}

var requestRules = policy.Config{
	Allow:    []string{"GET,POST svc.test/api/**", "other.test", "GET plain.test/ok/**"},
	ReadOnly: []string{"svc.test/docs/**", "plain.test/ro/**"},
}

func TestForwardRequestRules(t *testing.T) {
	ie := newInspectEnv(t, requestRules)
	c := httpClient(t, "http://"+ie.httpAddr, nil)
	for _, tt := range []struct {
		method, url string
		status      int
		proxyErr    string
		reason      string
	}{
		{"GET", "http://plain.test/ok/x", 200, "", policy.ReasonAllowed},
		{"GET", "http://plain.test/ro/x?y=1", 200, "", policy.ReasonAllowed},
		{"HEAD", "http://plain.test/ro/x", 200, "", policy.ReasonAllowed},
		{"POST", "http://plain.test/ro/x", 403, "blocked-by-method", policy.ReasonBlockedByMethod},
		{"DELETE", "http://plain.test/ok/x", 403, "blocked-by-method", policy.ReasonBlockedByMethod},
		{"GET", "http://plain.test/other", 403, "blocked-by-path", policy.ReasonBlockedByPath},
		{"GET", "http://plain.test/ok/../admin", 403, "blocked-by-path", policy.ReasonBlockedByPath},
	} {
		t.Run(tt.method+" "+tt.url, func(t *testing.T) {
			before := len(ie.upstream.all())
			resp, body := do(t, c, tt.method, tt.url, "")
			if resp.StatusCode != tt.status || resp.Header.Get("X-Proxy-Error") != tt.proxyErr {
				t.Fatalf("got %d %q (%s), want %d %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body, tt.status, tt.proxyErr)
			}
			u, _ := url.Parse(tt.url)
			path := u.EscapedPath()
			if u.RawQuery != "" {
				path += "?" + u.RawQuery
			}
			ev := ie.log.eventFor(t, "plain.test", tt.method, path)
			if ev.Reason != tt.reason || ev.Proto != "http" {
				t.Errorf("event %+v, want reason %q", ev, tt.reason)
			}
			reached := len(ie.upstream.all()) > before
			if reached != (tt.status == 200) {
				t.Errorf("upstream reached = %v for status %d", reached, tt.status)
			}
			if tt.status == 403 && !strings.Contains(tt.url, "..") {
				if !strings.Contains(body, "allowed there:") || !strings.Contains(ev.Text, "allowed there:") {
					t.Errorf("refusal does not name the rules that would allow it: body %q, text %q", body, ev.Text)
				}
			}
		})
	}
	// A host with no rules is not inspected: its events carry no method.
	ie2 := newInspectEnv(t, policy.Config{Allow: []string{"plain.test"}})
	c2 := httpClient(t, "http://"+ie2.httpAddr, nil)
	if resp, body := do(t, c2, "POST", "http://plain.test/anything", ""); resp.StatusCode != 200 {
		t.Fatalf("uninspected POST: %d %s", resp.StatusCode, body)
	}
	if ev := ie2.log.wait(t, "plain.test", 80); ev.Method != "" || ev.Path != "" {
		t.Errorf("uninspected host's event has method/path: %+v", ev)
	}
}

func TestConnectInspection(t *testing.T) {
	ie := newInspectEnv(t, requestRules)
	c := httpClient(t, "http://"+ie.httpAddr, ie.client)
	resp, body := do(t, c, "GET", "https://svc.test/docs/a", "")
	if resp.StatusCode != 200 || body != "HTTP/2.0 GET /docs/a 0" {
		t.Fatalf("GET through inspection: %d %q", resp.StatusCode, body)
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || resp.TLS.PeerCertificates[0].Issuer.CommonName != ie.auth.Certificate().Subject.CommonName {
		t.Errorf("the client did not get a certificate of the run CA")
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("client side spoke %s, want HTTP/2", resp.Proto)
	}
	ev := ie.log.eventFor(t, "svc.test", "GET", "/docs/a")
	if ev.Decision != audit.DecisionAllow || ev.Proto != "connect" || ev.Port != 443 {
		t.Errorf("allowed request event %+v", ev)
	}
	resp, body = do(t, c, "POST", "https://svc.test/docs/a", "")
	if resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != "blocked-by-method" {
		t.Fatalf("POST: %d %q %s", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body)
	}
	if ev := ie.log.eventFor(t, "svc.test", "POST", "/docs/a"); ev.Decision != audit.DecisionDeny || ev.Reason != policy.ReasonBlockedByMethod {
		t.Errorf("refused request event %+v", ev)
	}
	resp, _ = do(t, c, "GET", "https://svc.test/secret", "")
	if resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != "blocked-by-path" {
		t.Fatalf("GET /secret: %d %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"))
	}
	resp, body = do(t, c, "POST", "https://svc.test/api/v1", "")
	if resp.StatusCode != 200 || body != "HTTP/2.0 POST /api/v1 4" {
		t.Fatalf("POST /api/v1: %d %q", resp.StatusCode, body)
	}
	for _, r := range ie.upstream.all() {
		if strings.Contains(r, "/secret") || strings.HasPrefix(r, "POST svc.test /docs") {
			t.Errorf("a refused request reached the upstream: %q", r)
		}
	}
}

func TestSOCKSInspection(t *testing.T) {
	ie := newInspectEnv(t, requestRules)
	c := httpClient(t, "socks5://"+ie.socksAddr, ie.client)
	resp, body := do(t, c, "GET", "https://svc.test/docs/b", "")
	if resp.StatusCode != 200 || !strings.HasSuffix(body, "GET /docs/b 0") {
		t.Fatalf("GET through SOCKS inspection: %d %q", resp.StatusCode, body)
	}
	resp, _ = do(t, c, "PUT", "https://svc.test/docs/b", "")
	if resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != "blocked-by-method" {
		t.Fatalf("PUT: %d %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"))
	}
	if ev := ie.log.eventFor(t, "svc.test", "PUT", "/docs/b"); ev.Proto != "socks5" || ev.Decision != audit.DecisionDeny {
		t.Errorf("event %+v", ev)
	}
}

func TestUninspectedHostStillSpliced(t *testing.T) {
	ie := newInspectEnv(t, requestRules)
	// other.test has no rules: TLS goes end to end, so the client sees
	// the upstream's own certificate and must trust the public CA.
	c := httpClient(t, "http://"+ie.httpAddr, ie.ca.pool)
	resp, body := do(t, c, "DELETE", "https://other.test/x", "")
	if resp.StatusCode != 200 || !strings.HasSuffix(body, "DELETE /x 4") {
		t.Fatalf("DELETE to an uninspected host: %d %q", resp.StatusCode, body)
	}
	if got := resp.TLS.PeerCertificates[0].Issuer.CommonName; got != "proxy test public CA" {
		t.Errorf("certificate issued by %q, want the upstream's own", got)
	}
	ev := ie.log.wait(t, "other.test", 443)
	if ev.Method != "" || ev.Proto != "connect" || ev.BytesUp == 0 {
		t.Errorf("tunnel event %+v", ev)
	}
}

func TestInspectionSNIMismatch(t *testing.T) {
	ie := newInspectEnv(t, requestRules)
	conn := dial(t, ie.httpAddr)
	br := bufio.NewReader(conn)
	io.WriteString(conn, "CONNECT svc.test:443 HTTP/1.1\r\nHost: svc.test:443\r\n\r\n")
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(&bufConn{Conn: conn, r: br}, &tls.Config{ServerName: "other.test", RootCAs: ie.client})
	if err := tc.Handshake(); err == nil {
		t.Fatal("a ClientHello naming another host was accepted")
	}
	var ev audit.Event
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ev.Reason == "" {
		for _, e := range ie.log.all() {
			if e.Reason == inspect.ReasonSNIMismatch {
				ev = e
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ev.Host != "svc.test" || ev.Decision != audit.DecisionDeny || !strings.Contains(ev.Text, "other.test") {
		t.Errorf("SNI mismatch event %+v (all: %+v)", ev, ie.log.all())
	}
}

// bufConn reads through r first (bytes the response reader buffered).
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestInspectionUpstreamBadCertificate(t *testing.T) {
	other := newPublicCA(t) // not the CA that signed the upstream
	ie := newInspectEnv(t, requestRules, withRoots(other.pool))
	c := httpClient(t, "http://"+ie.httpAddr, ie.client)
	resp, body := do(t, c, "GET", "https://svc.test/docs/a", "")
	if resp.StatusCode != 502 || resp.Header.Get("X-Proxy-Error") != "upstream-tls" {
		t.Fatalf("got %d %q %s, want 502 upstream-tls", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body)
	}
	if !strings.Contains(body, "unknown authority") {
		t.Errorf("body %q does not say why", body)
	}
	if len(ie.upstream.all()) != 0 {
		t.Errorf("the upstream got requests: %v", ie.upstream.all())
	}
}

func TestInspectionWithoutAuthority(t *testing.T) {
	ie := newInspectEnv(t, requestRules, withoutAuthority())
	conn := dial(t, ie.httpAddr)
	resp, body := roundTrip(t, conn, bufio.NewReader(conn), "CONNECT svc.test:443 HTTP/1.1\r\nHost: svc.test:443\r\n\r\n")
	if resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != ReasonInspectUnavailable || !strings.Contains(body, "must be inspected") {
		t.Fatalf("CONNECT without an authority: %d %q %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body)
	}
	if ev := ie.log.wait(t, "svc.test", 443); ev.Decision != audit.DecisionDeny || ev.Reason != ReasonInspectUnavailable {
		t.Errorf("event %+v", ev)
	}
	s := ie.socks(t)
	if rep, _ := s.connect("svc.test", 443); rep != repNotAllowed {
		t.Errorf("SOCKS CONNECT without an authority: reply %d, want %d", rep, repNotAllowed)
	}
	// An uninspected host is unaffected.
	c := httpClient(t, "http://"+ie.httpAddr, ie.ca.pool)
	if resp, _ := do(t, c, "GET", "https://other.test/", ""); resp.StatusCode != 200 {
		t.Errorf("uninspected host: %d", resp.StatusCode)
	}
	if len(ie.upstream.all()) != 1 {
		t.Errorf("upstream saw %v, want only the uninspected request", ie.upstream.all())
	}
}

// fakeSecrets binds one placeholder to svc.test (and plain.test:80) and
// refuses it anywhere else.
type fakeSecrets struct{}

const (
	fakePlaceholder = "PLACEHOLDER-0123456789"
	fakeReal        = "real-value-09876543210" // as long as the placeholder, as real ones are
)

func (fakeSecrets) Binds(host string, port uint16) bool {
	return host == "svc.test" || (host == "plain.test" && port == 80)
}

func (f fakeSecrets) Apply(host string, port uint16, r *http.Request) error {
	v := r.Header.Get("Authorization")
	if !strings.Contains(v, fakePlaceholder) && !strings.Contains(r.URL.RawQuery, fakePlaceholder) {
		return nil
	}
	if !f.Binds(host, port) {
		return errors.New("a placeholder of TOKEN was sent to " + host + ", which TOKEN is not bound to")
	}
	r.Header.Set("Authorization", strings.ReplaceAll(v, fakePlaceholder, fakeReal))
	r.URL.RawQuery = strings.ReplaceAll(r.URL.RawQuery, fakePlaceholder, fakeReal)
	return nil
}

func (fakeSecrets) ConcealHeader(h http.Header) {
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = strings.ReplaceAll(v, fakeReal, fakePlaceholder)
		}
		h[k] = vs
	}
}

// ConcealReader conceals whole reads only: enough for the tests' short
// bodies.
func (fakeSecrets) ConcealReader(src io.Reader) io.Reader {
	b, err := io.ReadAll(src)
	if err != nil {
		return io.MultiReader(strings.NewReader(strings.ReplaceAll(string(b), fakeReal, fakePlaceholder)), errReader{err})
	}
	return strings.NewReader(strings.ReplaceAll(string(b), fakeReal, fakePlaceholder))
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (fakeSecrets) Redact(s string) string {
	s = strings.ReplaceAll(s, fakePlaceholder, "[TOKEN]")
	return strings.ReplaceAll(s, fakeReal, "[TOKEN]")
}

func TestInspectionSecrets(t *testing.T) {
	ie := newInspectEnv(t, policy.Config{Allow: []string{"svc.test", "other.test", "plain.test", "elsewhere.test"}},
		withSecrets(fakeSecrets{}))
	// svc.test has no rules but a bound secret: it is inspected and the
	// upstream gets the real value.
	c := httpClient(t, "http://"+ie.httpAddr, ie.client)
	resp, body := do(t, c, "GET", "https://svc.test/user?access_token="+fakePlaceholder, "Bearer "+fakePlaceholder)
	if resp.StatusCode != 200 {
		t.Fatalf("bound host: %d %s", resp.StatusCode, body)
	}
	got := ie.upstream.all()
	if len(got) != 1 || got[0] != "GET svc.test /user?access_token="+fakeReal+" Bearer "+fakeReal {
		t.Fatalf("upstream saw %q", got)
	}
	// A bound host echoing the value hands CMD the placeholder back.
	resp, body = do(t, c, "GET", "https://svc.test/echo", "Bearer "+fakePlaceholder)
	if resp.StatusCode != 200 || body != "HTTP/2.0 GET /echo 0 Bearer "+fakePlaceholder || resp.Header.Get("X-Echo-Auth") != "Bearer "+fakePlaceholder {
		t.Fatalf("echo from the bound host: %d %q %q", resp.StatusCode, body, resp.Header.Get("X-Echo-Auth"))
	}
	// Plain HTTP to a bound host is rewritten too.
	cp := httpClient(t, "http://"+ie.httpAddr, nil)
	if resp, body := do(t, cp, "GET", "http://plain.test/x", "token "+fakePlaceholder); resp.StatusCode != 200 || resp.Header.Get("X-Echo-Auth") != "token "+fakePlaceholder {
		t.Fatalf("plain bound host: %d %s %q", resp.StatusCode, body, resp.Header.Get("X-Echo-Auth"))
	}
	if _, body := do(t, cp, "GET", "http://plain.test/echo", "token "+fakePlaceholder); body != "HTTP/1.1 GET /echo 0 token "+fakePlaceholder {
		t.Fatalf("plain echo from the bound host: %q", body)
	}
	if got := ie.upstream.all(); len(got) != 4 || got[2] != "GET plain.test /x token "+fakeReal {
		t.Fatalf("upstream saw %q", got)
	}
	// A placeholder to any other host is refused before anything is dialled.
	dials := ie.dials.Load()
	resp, body = do(t, cp, "POST", "http://elsewhere.test/leak", "Bearer "+fakePlaceholder)
	if resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != ReasonSecretNotBound {
		t.Fatalf("unbound host: %d %q %s", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body)
	}
	if ie.dials.Load() != dials {
		t.Error("the unbound host was dialled")
	}
	if ev := ie.log.eventFor(t, "elsewhere.test", "POST", "/leak"); ev.Reason != ReasonSecretNotBound {
		t.Errorf("event %+v", ev)
	}
	// Without the placeholder the same host is fine (not inspected).
	if resp, _ := do(t, cp, "GET", "http://elsewhere.test/ok", ""); resp.StatusCode != 200 {
		t.Errorf("unbound host without placeholder: %d", resp.StatusCode)
	}
	for _, e := range ie.log.all() {
		if strings.Contains(fmt.Sprintf("%+v", e), fakeReal) || strings.Contains(fmt.Sprintf("%+v", e), fakePlaceholder) {
			t.Errorf("an audit event holds the secret or its placeholder: %+v", e)
		}
	}
}

func TestTransparentInspection(t *testing.T) {
	ca := newPublicCA(t)
	cert := ca.leaf(t, "svc.test")
	var got seen
	up := serveHTTP(t, &cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.add(r)
		io.WriteString(w, "ok")
	}))
	pol, err := policy.New(policy.Config{ReadOnly: []string{"svc.test"}})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := inspect.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	log := &eventLog{}
	srv := New(Options{
		Gate: &egress.Gate{
			Policy:     pol,
			Resolver:   &egress.StaticResolver{Hosts: map[string][]netip.Addr{"svc.test": {netip.MustParseAddr("203.0.113.10")}}},
			LocalAddrs: func() []netip.Addr { return nil },
			Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", up)
			},
		},
		Audit: log, Logf: t.Logf, Authority: auth, UpstreamRoots: ca.pool,
	})
	names, dst := newFakeNames(), newFakeDst()
	ln := listen(t, "tcp4", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() {
		served <- srv.ServeTransparent(ln, TransparentOptions{OriginalDst: dst.originalDst, Names: names})
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-served
	})
	roots := x509.NewCertPool()
	roots.AddCert(auth.Certificate())
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c := dial(t, ln.Addr().String())
			dst.mu.Lock()
			dst.dsts[c.LocalAddr().String()] = netip.MustParseAddrPort("198.18.0.1:443") // svc.test
			dst.mu.Unlock()
			return c, nil
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, tt := range []struct {
		method string
		status int
	}{{"GET", 200}, {"POST", 403}} {
		resp, err := c.Post("https://svc.test/x", "text/plain", strings.NewReader("y"))
		if tt.method == "GET" {
			resp, err = c.Get("https://svc.test/x")
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.method, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d, want %d", tt.method, resp.StatusCode, tt.status)
		}
		if ev := log.eventFor(t, "svc.test", tt.method, "/x"); ev.Proto != ProtoTransparent {
			t.Errorf("event %+v", ev)
		}
	}
	if r := got.all(); len(r) != 1 || !strings.HasPrefix(r[0], "GET svc.test /x") {
		t.Errorf("upstream saw %q", r)
	}
}

func TestConnectInspectionWebSocket(t *testing.T) {
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		if line, err := brw.ReadString('\n'); err == nil {
			conn.Write([]byte("echo:" + line))
		}
	})
	ie := newInspectEnvWith(t, policy.Config{Allow: []string{"GET svc.test/ws"}}, ws)
	for _, tc := range []struct {
		path   string
		status int
	}{{"/ws", 101}, {"/other", 403}} {
		conn := dial(t, ie.httpAddr)
		br := bufio.NewReader(conn)
		io.WriteString(conn, "CONNECT svc.test:443 HTTP/1.1\r\nHost: svc.test:443\r\n\r\n")
		if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		tc2 := tls.Client(&bufConn{Conn: conn, r: br}, &tls.Config{ServerName: "svc.test", RootCAs: ie.client, NextProtos: []string{"http/1.1"}})
		fmt.Fprintf(tc2, "GET %s HTTP/1.1\r\nHost: svc.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", tc.path)
		tbr := bufio.NewReader(tc2)
		resp, err := http.ReadResponse(tbr, nil)
		if err != nil {
			t.Fatalf("upgrade %s: %v", tc.path, err)
		}
		if resp.StatusCode != tc.status {
			t.Fatalf("upgrade %s: %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		if tc.status != 101 {
			if resp.Header.Get("X-Proxy-Error") != "blocked-by-path" {
				t.Errorf("refused upgrade: X-Proxy-Error %q", resp.Header.Get("X-Proxy-Error"))
			}
			continue
		}
		io.WriteString(tc2, "hello\n")
		if got, err := tbr.ReadString('\n'); err != nil || got != "echo:hello\n" {
			t.Fatalf("after the upgrade: %q %v", got, err)
		}
		conn.Close()
		if ev := ie.log.eventFor(t, "svc.test", "GET", "/ws"); ev.Decision != audit.DecisionAllow {
			t.Errorf("upgrade event %+v", ev)
		}
	}
}

// TestLiveRuleInspects: a rule added to the live policy while the server
// runs makes its host inspected for the next connections.
func TestLiveRuleInspects(t *testing.T) {
	var live *egress.Live
	ie := newInspectEnv(t, policy.Config{Allow: []string{"svc.test"}}, func(o *Options, _ *inspectEnv) {
		live = egress.NewLive(o.Gate.Policy)
		o.Gate.Live = live
	})
	spliced := httpClient(t, "http://"+ie.httpAddr, ie.ca.pool)
	if resp, _ := do(t, spliced, "POST", "https://svc.test/x", ""); resp.StatusCode != 200 {
		t.Fatalf("before the rule: %d", resp.StatusCode)
	}
	if _, err := live.Allow("GET svc.test/ok/**"); err != nil {
		t.Fatal(err)
	}
	c := httpClient(t, "http://"+ie.httpAddr, ie.client)
	if resp, _ := do(t, c, "GET", "https://svc.test/ok/x", ""); resp.StatusCode != 200 {
		t.Errorf("GET after the rule: %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, "POST", "https://svc.test/ok/x", ""); resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != "blocked-by-method" {
		t.Errorf("POST after the rule: %d %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"))
	}
}

// TestDeciderAllowedInspectedHost: a host the policy does not list, which
// the decider allows, is inspected (--inspect, or a bound secret) and then
// decided like an allowed host without rules: every request passes, each
// is an event with its method and path, and the secret is substituted. A
// listed host's rules and a deny still decide, and a host the decider
// refuses never gets a request through.
func TestDeciderAllowedInspectedHost(t *testing.T) {
	var asked atomic.Int64
	dec := decide.Func(func(_ context.Context, q decide.Question) (decide.Answer, error) {
		asked.Add(1)
		return decide.Answer{Allow: q.Host == "svc.test" || q.Host == "other.test", Scope: decide.ScopeOnce}, nil
	})
	withAsker := func(o *Options, _ *inspectEnv) { o.Gate.Ask = &egress.Asker{Decider: dec, Run: "t"} }
	ie := newInspectEnv(t, policy.Config{Allow: []string{"elsewhere.test"}, Inspect: []string{"other.test", "elsewhere.test"},
		ReadOnly: []string{"plain.test"}}, withAsker, withSecrets(fakeSecrets{}))
	c := httpClient(t, "http://"+ie.httpAddr, ie.client)
	for _, tt := range []struct{ method, url, auth, want string }{
		{"GET", "https://other.test/a", "", "HTTP/2.0 GET /a 0"},
		{"POST", "https://other.test/b", "", "HTTP/2.0 POST /b 4"},
		{"POST", "https://svc.test/api", "Bearer " + fakePlaceholder, "HTTP/2.0 POST /api 4"},
	} {
		resp, body := do(t, c, tt.method, tt.url, tt.auth)
		if resp.StatusCode != 200 || body != tt.want {
			t.Errorf("%s %s: %d %q %q, want 200 %q", tt.method, tt.url, resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body, tt.want)
		}
		u, _ := url.Parse(tt.url)
		ev := ie.log.eventFor(t, u.Hostname(), tt.method, u.Path)
		if ev.Decision != audit.DecisionAllow || !strings.Contains(ev.Text, "the decider allowed") {
			t.Errorf("event %+v, want an allow naming the decider", ev)
		}
	}
	if got := strings.Join(ie.upstream.all(), "\n"); !strings.Contains(got, "POST svc.test /api Bearer "+fakeReal) {
		t.Errorf("the bound, decider-allowed host did not get the real value; upstream saw:\n%s", got)
	}
	// A listed host keeps its rules, and a host the decider refuses is
	// refused before any request.
	if resp, _ := do(t, httpClient(t, "http://"+ie.httpAddr, nil), "POST", "http://plain.test/x", ""); resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != "blocked-by-method" {
		t.Errorf("POST to a read-only host: %d %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"))
	}
	if d := decidedByAsker(policy.Decision{Block: policy.BlockDenylist, Reason: policy.ReasonDenied}, &egress.Gate{Ask: &egress.Asker{}}, "h", 443, "GET", "/"); d.Allow {
		t.Error("a deny was turned into an allow")
	}
	if d := decidedByAsker(policy.Decision{Block: policy.BlockAllowlist, Reason: policy.ReasonNotAllowed}, &egress.Gate{}, "h", 443, "GET", "/"); d.Allow {
		t.Error("a host not on the list was allowed without an Asker")
	}
}

// TestReadOnlyHostWithSecret: a read-only host a secret is bound to gets
// the real value on the requests its rules allow, and a refused request
// (POST) is 403 blocked-by-method and never reaches it, value or not.
func TestReadOnlyHostWithSecret(t *testing.T) {
	ie := newInspectEnv(t, policy.Config{ReadOnly: []string{"svc.test"}}, withSecrets(fakeSecrets{}))
	c := httpClient(t, "http://"+ie.httpAddr, ie.client)
	if resp, body := do(t, c, "GET", "https://svc.test/user", "Bearer "+fakePlaceholder); resp.StatusCode != 200 {
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
	resp, body := do(t, c, "POST", "https://svc.test/gists", "Bearer "+fakePlaceholder)
	if resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != "blocked-by-method" {
		t.Fatalf("POST: %d %q %s", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body)
	}
	if got := ie.upstream.all(); len(got) != 1 || got[0] != "GET svc.test /user Bearer "+fakeReal {
		t.Errorf("upstream saw %q, want only the GET with the real value", got)
	}
	if ev := ie.log.eventFor(t, "svc.test", "POST", "/gists"); ev.Reason != policy.ReasonBlockedByMethod {
		t.Errorf("POST event %+v", ev)
	}
}
