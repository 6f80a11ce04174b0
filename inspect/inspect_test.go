package inspect

import (
	"bufio"
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

	"github.com/sandgate/sandgate/audit"
)

const testHost = "upstream.test"

// echoHandler answers with the protocol, method and path it saw.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%d method=%s path=%s host=%s", r.ProtoMajor, r.Method, r.URL.Path, r.Host)
	})
}

func get(t *testing.T, c *http.Client, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestAuthorityLeaf(t *testing.T) {
	a, err := NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.Certificate().Subject.CommonName, "sandgate run CA ") || !a.Certificate().IsCA ||
		a.Certificate().MaxPathLen != 0 || !a.Certificate().MaxPathLenZero {
		t.Fatalf("CA certificate: %+v", a.Certificate().Subject)
	}
	if strings.Contains(string(a.CertPEM()), "PRIVATE") {
		t.Fatal("CertPEM carries a private key")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.CertPEM()) {
		t.Fatal("CertPEM is not a PEM certificate")
	}
	var wg sync.WaitGroup
	leaves := make([]*tls.Certificate, 8)
	for i := range leaves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host := "Upstream.Test."
			if i%2 == 1 {
				host = "upstream.test"
			}
			leaves[i], _ = a.Leaf(host)
		}()
	}
	wg.Wait()
	for i, l := range leaves {
		if l == nil || l != leaves[0] {
			t.Fatalf("leaf %d is not the one cached certificate", i)
		}
	}
	if _, err := leaves[0].Leaf.Verify(x509.VerifyOptions{DNSName: testHost, Roots: pool}); err != nil {
		t.Fatalf("leaf does not verify for %s: %v", testHost, err)
	}
	ipLeaf, err := a.Leaf("192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ipLeaf.Leaf.Verify(x509.VerifyOptions{DNSName: "192.0.2.7", Roots: pool}); err != nil {
		t.Fatalf("IP leaf does not verify: %v", err)
	}
	if _, err := leaves[0].Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: pool}); err == nil {
		t.Fatal("leaf verifies for another name")
	}
}

func TestAllowedAndRefused(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.leaf(t, testHost)
	up := startUpstream(t, &cert, echoHandler())
	env := startIntercept(t, testHost, 443, up, ca.pool, nil)
	c := env.client(t, false)

	resp, body := get(t, c, "GET", "https://"+testHost+"/repo/info")
	if resp.StatusCode != 200 || !strings.Contains(body, "method=GET path=/repo/info host="+testHost) {
		t.Fatalf("allowed GET: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, c, "POST", "https://"+testHost+"/repo/push")
	if resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != "blocked-by-path" || !strings.Contains(body, "POST is not allowed") {
		t.Fatalf("refused POST: %d %q %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body)
	}
	resp, _ = get(t, c, "GET", "https://"+testHost+"/private/x")
	if resp.StatusCode != 403 || resp.Header.Get("X-Proxy-Error") != "blocked-by-denylist" {
		t.Fatalf("refused path: %d %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"))
	}
	evs := env.events.wait(t, 3)
	if evs[0].Decision != "allow" || evs[0].Method != "GET" || evs[0].Path != "/repo/info" || evs[0].BytesDown == 0 {
		t.Fatalf("allow event: %+v", evs[0])
	}
	if evs[1].Decision != "deny" || evs[1].Method != "POST" || evs[1].Path != "/repo/push" || evs[1].Reason != "method-denied" {
		t.Fatalf("deny event: %+v", evs[1])
	}
}

func TestHTTP2EndToEnd(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.leaf(t, testHost)
	up := startUpstream(t, &cert, echoHandler())
	env := startIntercept(t, testHost, 443, up, ca.pool, nil)
	resp, body := get(t, env.client(t, true), "GET", "https://"+testHost+"/h2")
	if resp.ProtoMajor != 2 || !strings.Contains(body, "proto=2 ") {
		t.Fatalf("want h2 both sides: client saw HTTP/%d, server said %q", resp.ProtoMajor, body)
	}
}

func TestGRPCTrailers(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.leaf(t, testHost)
	up := startUpstream(t, &cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.Header.Get("Content-Type") != "application/grpc" {
			http.Error(w, "want h2 grpc", 400)
			return
		}
		in, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.WriteHeader(200)
		w.Write(in)
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("Grpc-Message", "ok")
	}))
	env := startIntercept(t, testHost, 443, up, ca.pool, nil)
	req, _ := http.NewRequest("POST", "https://"+testHost+"/grpc.Service/Call", strings.NewReader("\x00\x00\x00\x00\x02hi"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := env.client(t, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "\x00\x00\x00\x00\x02hi" {
		t.Fatalf("gRPC call: %d %q", resp.StatusCode, body)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "ok" {
		t.Fatalf("trailers lost: %v", resp.Trailer)
	}
}

func TestWebSocketPassesBothWays(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.leaf(t, testHost)
	up := startUpstream(t, &cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
		brw.Flush()
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		conn.Write([]byte("echo:" + line))
	}))
	env := startIntercept(t, testHost, 443, up, ca.pool, nil)
	raw, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(raw, &tls.Config{ServerName: testHost, RootCAs: env.pool, NextProtos: []string{"http/1.1"}})
	fmt.Fprintf(tc, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", testHost)
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	fmt.Fprintf(tc, "hello\n")
	got, err := br.ReadString('\n')
	if err != nil || got != "echo:hello\n" {
		t.Fatalf("after upgrade: %q %v", got, err)
	}
	raw.Close() // the request's event is recorded when the upgraded stream ends
	evs := env.events.wait(t, 1)
	if evs[0].Method != "GET" || evs[0].Path != "/ws" || evs[0].Decision != "allow" {
		t.Fatalf("upgrade event: %+v", evs[0])
	}
}

func TestSNIMismatchRefused(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.leaf(t, testHost)
	hit := make(chan struct{}, 1)
	up := startUpstream(t, &cert, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit <- struct{}{} }))
	env := startIntercept(t, testHost, 443, up, ca.pool, nil)
	raw, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(raw, &tls.Config{ServerName: "other.test", InsecureSkipVerify: true})
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake naming another host succeeded")
	}
	evs := env.events.wait(t, 1)
	if evs[0].Reason != ReasonSNIMismatch || evs[0].Decision != "deny" || !strings.Contains(evs[0].Text, "other.test") {
		t.Fatalf("event: %+v", evs[0])
	}
	select {
	case <-hit:
		t.Fatal("the upstream saw a request")
	default:
	}
}

func TestHostMismatch(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.leaf(t, testHost)
	up := startUpstream(t, &cert, echoHandler())
	env := startIntercept(t, testHost, 443, up, ca.pool, nil)
	c := env.client(t, false)
	req, _ := http.NewRequest("GET", "https://"+testHost+"/", nil)
	req.Host = "other.test"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get("X-Proxy-Error") != "host-mismatch" {
		t.Fatalf("host mismatch: %d %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"))
	}
	resp, body := get(t, c, "GET", "https://"+testHost+"/a/../private")
	_ = body
	if resp.StatusCode == 200 {
		t.Fatal("a dot segment path passed")
	}
}

func TestUpstreamBadCertificate(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"unknown-ca", "unknown authority"},
		{"other-name", "another name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trusted := newTestCA(t)
			signer := trusted
			names := []string{testHost}
			if tc.name == "unknown-ca" {
				signer = newTestCA(t)
			} else {
				names = []string{"other.test"}
			}
			cert := signer.leaf(t, names...)
			up := startUpstream(t, &cert, echoHandler())
			env := startIntercept(t, testHost, 443, up, trusted.pool, nil)
			resp, body := get(t, env.client(t, true), "GET", "https://"+testHost+"/x")
			if resp.StatusCode != 502 || resp.Header.Get("X-Proxy-Error") != "upstream-tls" || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %q %q", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body)
			}
			evs := env.events.wait(t, 1)
			if evs[0].Reason != ReasonUpstreamTLS || evs[0].Decision != audit.DecisionDeny || !strings.Contains(evs[0].Text, tc.want) {
				t.Fatalf("event: %+v", evs[0])
			}
		})
	}
}

func TestPlainHTTPAndUnknownProtocol(t *testing.T) {
	up := startUpstream(t, nil, echoHandler())
	env := startIntercept(t, testHost, 80, up, nil, nil)
	tr := &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("tcp", env.addr) }}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	resp, body := get(t, c, "GET", "http://"+testHost+"/plain")
	if resp.StatusCode != 200 || !strings.Contains(body, "proto=1 method=GET path=/plain") {
		t.Fatalf("plain GET: %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, c, "DELETE", "http://"+testHost+"/plain")
	if resp.StatusCode != 403 {
		t.Fatalf("plain DELETE: %d", resp.StatusCode)
	}
	raw, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("SSH-2.0-x\r\n\x00"))
	raw.Write([]byte{0x00, 0x01})
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _ := raw.Read(make([]byte, 10)); n != 0 {
		t.Fatalf("an unknown protocol got %d bytes back", n)
	}
	evs := env.events.wait(t, 3)
	if evs[2].Reason != ReasonUnknownProtocol {
		t.Fatalf("event: %+v", evs[2])
	}
}
