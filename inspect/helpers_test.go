package inspect

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/policy"
)

// testCA is a throwaway CA standing for the public trust in tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test public CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf signs a server certificate for names.
func (ca *testCA) leaf(t testing.TB, names ...string) tls.Certificate {
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

// startUpstream serves h on loopback over TLS with cert (h2 and HTTP/1.1),
// or in plain text when cert is nil. It returns the address.
func startUpstream(t testing.TB, cert *tls.Certificate, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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

// fakePolicy allows GET and HEAD everywhere except under /private, and
// refuses every other method.
func fakePolicy(method, path string) policy.Decision {
	if strings.HasPrefix(path, "/private") {
		return policy.Decision{Block: policy.BlockDenylist, Reason: "path-denied", Text: path + " is not allowed"}
	}
	if method != http.MethodGet && method != http.MethodHead && !strings.HasPrefix(path, "/grpc") {
		return policy.Decision{Reason: "method-denied", Text: method + " is not allowed"}
	}
	return policy.Decision{Allow: true, Reason: "allowed"}
}

// events collects audit events.
type events struct {
	mu  sync.Mutex
	evs []audit.Event
}

func (e *events) record(ev audit.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

// wait returns the events once there are at least n (or fails).
func (e *events) wait(t testing.TB, n int) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		got := append([]audit.Event(nil), e.evs...)
		e.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d audit events, have %d: %+v", n, len(got), got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// interceptEnv is an interceptor listening on loopback for one target.
type interceptEnv struct {
	auth   *Authority
	addr   string // the interceptor's listener
	events *events
	pool   *x509.CertPool // trusts the run CA
}

// startIntercept serves every connection to a loopback listener with
// Serve for host:port, dialling upstream at upstreamAddr.
func startIntercept(t testing.TB, host string, port uint16, upstreamAddr string, roots *x509.CertPool, mod func(*Config)) *interceptEnv {
	t.Helper()
	auth, err := NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &interceptEnv{auth: auth, addr: l.Addr().String(), events: &events{}, pool: x509.NewCertPool()}
	env.pool.AppendCertsFromPEM(auth.CertPEM())
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	var conns sync.Map
	t.Cleanup(func() { conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true }) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			cfg := Config{
				Authority: auth, Host: host, Port: port, Check: fakePolicy, RootCAs: roots,
				Dial: func(ctx context.Context) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "tcp", upstreamAddr)
				},
				Event:  audit.Event{Proto: "connect", Client: c.RemoteAddr().String()},
				Record: env.events.record,
			}
			if mod != nil {
				mod(&cfg)
			}
			wg.Add(1)
			go func() { defer wg.Done(); Serve(c, nil, cfg) }()
		}
	}()
	return env
}

// client returns an HTTP client whose every connection goes to the
// interceptor, trusting the run CA, speaking h2 when h2 is true.
func (env *interceptEnv) client(t testing.TB, h2 bool) *http.Client {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(h2)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", env.addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: env.pool},
		ForceAttemptHTTP2: h2,
		Protocols:         &protos,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
