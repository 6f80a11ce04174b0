//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/inspect"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/proxy"
)

// The `_inspect-proxy` helper is sandgate's side of `bench inspect`, in a
// process of its own (as mitmdump is), so that its CPU is its own. It
// serves two loopback listeners for one target:
//
//   - tunnel: sandgate's proxy.Server (HTTP CONNECT, splice), no inspection;
//   - inspect: a small CONNECT front that decides the target with the same
//     egress gate, answers 200 and hands the client connection (and the
//     already dialled upstream) to inspect.Serve, with a Check that allows
//     every request. It stands for the proxy's wiring of inspection, which
//     is not in main yet.
//
// It writes the run CA (PEM) to -ca-out, prints "tunnel ADDR inspect ADDR"
// on stdout and serves until stdin closes (the driver's end of the pipe).

// inspectProxyMain is the `_inspect-proxy` helper.
func inspectProxyMain(args []string) int {
	fs := flag.NewFlagSet("_inspect-proxy", flag.ContinueOnError)
	target := fs.String("target", "", "the one allowed target, host:port")
	roots := fs.String("roots", "", "PEM file of the CA the upstream's certificate is signed by")
	caOut := fs.String("ca-out", "", "write the run CA's certificate (PEM) here")
	profile := fs.String("cpuprofile", "", "write a Go CPU profile of this helper to FILE")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "_inspect-proxy: -cpuprofile: %v\n", err)
			return 2
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	h, err := startInspectHarness(*target, *roots)
	if err == nil {
		err = os.WriteFile(*caOut, h.auth.CertPEM(), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "_inspect-proxy: %v\n", err)
		return 1
	}
	fmt.Printf("tunnel %s inspect %s\n", h.tunnelLn.Addr(), h.inspectLn.Addr())
	io.Copy(io.Discard, os.Stdin) // until the driver goes away
	h.stop()
	return 0
}

// inspectHarness is the tunnel proxy and the inspecting CONNECT front.
type inspectHarness struct {
	gate      *egress.Gate
	auth      *inspect.Authority
	roots     *x509.CertPool
	host      string
	port      uint16
	srv       *proxy.Server
	tunnelLn  net.Listener
	inspectLn net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startInspectHarness listens on two loopback ports for target, trusting
// the upstream certificates signed by the CA in rootsFile.
func startInspectHarness(target, rootsFile string) (*inspectHarness, error) {
	host, port, err := splitTarget(target)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(rootsFile)
	if err != nil {
		return nil, fmt.Errorf("reading the upstream CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", rootsFile)
	}
	pol, err := policy.New(policy.Config{Allow: []string{target}})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	auth, err := inspect.NewAuthority()
	if err != nil {
		return nil, err
	}
	h := &inspectHarness{gate: &egress.Gate{Policy: pol, DialTimeout: 10 * time.Second}, auth: auth, roots: pool,
		host: host, port: port, conns: make(map[net.Conn]struct{})}
	if h.tunnelLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if h.inspectLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		h.tunnelLn.Close()
		return nil, err
	}
	h.srv = proxy.New(proxy.Options{Gate: h.gate, Limits: proxy.Limits{MaxConns: 4096}})
	go h.srv.ServeHTTP(h.tunnelLn)
	go h.serveInspect()
	return h, nil
}

// splitTarget parses host:port with a port from 1 to 65535.
func splitTarget(target string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(target)
	if err != nil {
		return "", 0, fmt.Errorf("target %q: %w", target, err)
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 || host == "" {
		return "", 0, fmt.Errorf("target %q: want host:port with a port from 1 to 65535", target)
	}
	return host, uint16(p), nil
}

func (h *inspectHarness) stop() {
	h.tunnelLn.Close()
	h.inspectLn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_ = h.srv.Shutdown(ctx)
	cancel()
	h.mu.Lock()
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// serveInspect accepts the inspecting front's connections.
func (h *inspectHarness) serveInspect() {
	for {
		c, err := h.inspectLn.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns[c] = struct{}{}
		h.mu.Unlock()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.handleInspect(c)
			h.mu.Lock()
			delete(h.conns, c)
			h.mu.Unlock()
		}()
	}
}

// handleInspect reads one CONNECT, decides and dials its target with the
// gate, answers 200 and serves the rest of the connection with inspection.
func (h *inspectHarness) handleInspect(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
	req, err := http.ReadRequest(br)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	host, port, err := connectTarget(req)
	if err != nil || !sameTarget(host, port, h.host, h.port) {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		c.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	up, _, dialed, err := h.gate.Connect(ctx, host, port)
	cancel()
	if err != nil || up == nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		c.Close()
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		c.Close()
		up.Close()
		return
	}
	// Bytes the client sent after the CONNECT head are already buffered.
	initial, _ := br.Peek(br.Buffered())
	initial = append([]byte(nil), initial...)
	_ = inspect.Serve(c, initial, inspect.Config{
		Authority: h.auth,
		Host:      host,
		Port:      port,
		Check: func(string, string) policy.Decision {
			return policy.Decision{Allow: true, Reason: "bench"}
		},
		First: up,
		Dial: func(ctx context.Context) (net.Conn, error) {
			conn, _, _, err := h.gate.Connect(ctx, host, port)
			if err == nil && conn == nil {
				err = errors.New("refused by the policy")
			}
			return conn, err
		},
		RootCAs: h.roots,
		Event:   audit.Event{Proto: "connect", Client: c.RemoteAddr().String(), Dialed: dialed.String()},
	})
}

// connectTarget returns the host and port of a CONNECT request.
func connectTarget(req *http.Request) (string, uint16, error) {
	if req.Method != http.MethodConnect {
		return "", 0, fmt.Errorf("method %s, want CONNECT", req.Method)
	}
	return splitTarget(req.Host)
}

// sameTarget compares a CONNECT target with the allowed one.
func sameTarget(host string, port uint16, wantHost string, wantPort uint16) bool {
	return port == wantPort && host == wantHost
}
