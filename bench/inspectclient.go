//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTPS clients of `bench inspect`: one GET of a large body (HTTP/1.1
// or h2), and new connections (TCP, CONNECT when proxied, a full TLS
// handshake, a 1 KiB GET, close) for a while from one or many clients.

// tlsPath is one way to the upstream: direct, or through an HTTP proxy
// (CONNECT) whose certificates roots verifies.
type tlsPath struct {
	name  string
	proxy string // host:port of the proxy; "" for direct
	roots *x509.CertPool
	pid   int  // the proxy's process, for its CPU; 0 for none
	noH2  bool // the proxy speaks no h2 to clients: an h2 offer gets HTTP/1.1
}

// bulkGET downloads n bytes in one GET from upstream over p and times it
// from the request to the last byte.
func bulkGET(p tlsPath, upstream string, h2 bool, n int64, timeout time.Duration) result {
	r := result{Test: "bulk-h1", Via: p.name}
	if h2 {
		r.Test = "bulk-h2"
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(h2)
	tr := &http.Transport{
		TLSClientConfig:    &tls.Config{RootCAs: p.roots},
		Protocols:          &protos,
		ForceAttemptHTTP2:  h2,
		DisableCompression: true,
		ReadBufferSize:     64 << 10,
	}
	if p.proxy != "" {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: p.proxy})
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+upstream+"/bulk?n="+strconv.FormatInt(n, 10), nil)
	if err != nil {
		r.fail(err)
		return r
	}
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		r.fail(fmt.Errorf("GET: %w", err))
		return r
	}
	defer resp.Body.Close()
	want := 1
	if h2 && !p.noH2 {
		want = 2
	}
	if resp.ProtoMajor != want || resp.StatusCode != http.StatusOK {
		r.fail(fmt.Errorf("got %s %s, want 200 over HTTP/%d", resp.Proto, resp.Status, want))
		return r
	}
	buf := make([]byte, 256<<10)
	for {
		k, err := resp.Body.Read(buf)
		r.Bytes += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			r.fail(fmt.Errorf("reading the body after %d bytes: %w", r.Bytes, err))
			break
		}
	}
	r.Seconds = time.Since(start).Seconds()
	if r.Errors == 0 && r.Bytes != n {
		r.fail(fmt.Errorf("got %d bytes, want %d", r.Bytes, n))
	}
	return r
}

// freshTLS runs clients loops of one new connection each for dur and
// counts the completed ones. With sessions, the clients keep their TLS
// sessions there and resume them; resumed counts the handshakes that did.
func freshTLS(p tlsPath, upstream string, clients int, dur time.Duration, sessions tls.ClientSessionCache) (r result, resumed int64) {
	r = result{Test: "fresh-tls", Via: p.name}
	var ops, res atomic.Int64
	var mu sync.Mutex
	var errs int64
	var first string
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for time.Now().Before(deadline) {
				did, err := freshTLSOnce(p, upstream, buf, sessions)
				if err != nil {
					mu.Lock()
					errs++
					if first == "" {
						first = err.Error()
					}
					mu.Unlock()
					return
				}
				ops.Add(1)
				if did {
					res.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	r.Ops = ops.Load()
	r.Errors, r.FirstErr = errs, first
	return r, res.Load()
}

// freshTLSOnce makes one new connection: TCP to the proxy (then CONNECT)
// or the upstream, a TLS handshake offering http/1.1 (resuming a session
// from sessions when that is not nil), GET /small with Connection: close,
// the whole response, close. It reports whether the handshake resumed.
func freshTLSOnce(p tlsPath, upstream string, buf []byte, sessions tls.ClientSessionCache) (bool, error) {
	to := upstream
	if p.proxy != "" {
		to = p.proxy
	}
	raw, err := net.DialTimeout("tcp", to, 10*time.Second)
	if err != nil {
		return false, err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if p.proxy != "" {
		if err := connectTunnel(raw, upstream, 10*time.Second); err != nil {
			return false, err
		}
	}
	host, _, _ := net.SplitHostPort(upstream)
	tc := tls.Client(raw, &tls.Config{ServerName: host, RootCAs: p.roots, NextProtos: []string{"http/1.1"}, ClientSessionCache: sessions})
	if _, err := io.WriteString(tc, "GET /small HTTP/1.1\r\nHost: "+upstream+"\r\nConnection: close\r\n\r\n"); err != nil {
		return false, fmt.Errorf("TLS and request: %w", err)
	}
	br := bufio.NewReaderSize(tc, 4096)
	status, err := br.ReadString('\n')
	if err != nil {
		return false, fmt.Errorf("reading the response: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		return false, fmt.Errorf("response %q", strings.TrimSpace(status))
	}
	var body int
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false, fmt.Errorf("reading the response head: %w", err)
		}
		if line == "\r\n" {
			break
		}
	}
	for {
		k, err := br.Read(buf)
		body += k
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("reading the body: %w", err)
		}
	}
	if body != smallBody {
		return false, fmt.Errorf("body of %d bytes, want %d", body, smallBody)
	}
	return tc.ConnectionState().DidResume, nil
}
