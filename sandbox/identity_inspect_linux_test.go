//go:build linux

package sandbox

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/inspect"
	"github.com/sandgate/sandgate/policy"
)

// inspectScript runs curl in the sandbox against an inspected host; curl
// trusts the run CA through the trust view (Spec.TrustPEM), no flag.
const inspectScript = `
curl -sS --max-time 10 -o /dev/null -w 'T-GET=%{http_code}\n' https://remote.test/docs
curl -sS --max-time 10 -D hdr.txt -o /dev/null -w 'T-POST=%{http_code}\n' -X POST -d leak=1 https://remote.test/docs
grep -qi '^x-proxy-error: blocked-by-method' hdr.txt && echo T-BLOCKED-BY-METHOD
curl -sS --max-time 10 --proxy "$ALL_PROXY" -o /dev/null -w 'T-SOCKS-DELETE=%{http_code}\n' -X DELETE https://remote.test/docs
exit 0
`

// testInspect: on the identity backend (credentialed proxy), a host with
// --read-only rules is inspected through CONNECT and SOCKS5: GET passes,
// POST and DELETE get 403 blocked-by-method and never reach the server,
// and the audit has each request's method and path.
func (w *idWorld) testInspect(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is needed (scripts/install-test-deps.sh installs it): %v", err)
	}
	roots, cert := inspectTestPKI(t, "remote.test")
	var mu sync.Mutex
	var seen []string
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.URL.Path)
			mu.Unlock()
			fmt.Fprintln(rw, "inspected upstream")
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	pol, err := policy.New(policy.Config{ReadOnly: []string{"remote.test"}})
	if err != nil {
		t.Fatal(err)
	}
	gate, auth := inspectedGate(t, pol, ln.Addr().String())
	sink := &events{}
	spec := w.spec("")
	spec.Args = []string{"/bin/bash", "-c", inspectScript}
	spec.Network, spec.Gate, spec.Audit = NetworkProxy, gate, sink
	spec.Authority, spec.UpstreamRoots, spec.TrustPEM = auth, roots, auth.CertPEM()
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("%+v %v %s", o.res, o.err, o.stderr)
	}
	for _, want := range []string{"T-GET=200", "T-POST=403", "T-BLOCKED-BY-METHOD", "T-SOCKS-DELETE=403"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, o.stdout)
		}
	}
	mu.Lock()
	got := strings.Join(seen, ",")
	mu.Unlock()
	if got != "GET /docs" {
		t.Errorf("the upstream saw %q, want only the GET", got)
	}
	want := map[string]bool{"connect GET allow": false, "connect POST deny": false, "socks5 DELETE deny": false}
	sink.mu.Lock()
	for _, e := range sink.got {
		k := e.Proto + " " + e.Method + " " + e.Decision
		if _, ok := want[k]; ok && e.Host == "remote.test" && e.Path == "/docs" {
			want[k] = true
		}
	}
	sink.mu.Unlock()
	for k, ok := range want {
		if !ok {
			t.Errorf("no audit event %q in %+v", k, sink.got)
		}
	}
}

// inspectTestPKI makes a throwaway public CA and a server certificate for
// name signed by it.
func inspectTestPKI(t *testing.T, name string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sandbox test public CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// inspectedGate is a gate that resolves remote.test to a documentation
// address and dials every allowed connection to the test's upstream, and
// the run CA that inspects it.
func inspectedGate(t *testing.T, pol *policy.Policy, upstream string) (*egress.Gate, *inspect.Authority) {
	t.Helper()
	gate := &egress.Gate{
		Policy:     pol,
		Resolver:   &egress.StaticResolver{Hosts: map[string][]netip.Addr{"remote.test": {netip.MustParseAddr("192.0.2.10")}}},
		LocalAddrs: func() []netip.Addr { return nil },
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", upstream)
		},
	}
	auth, err := inspect.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	return gate, auth
}
