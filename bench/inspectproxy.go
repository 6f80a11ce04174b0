//go:build linux

package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/inspect"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/proxy"
)

// The `_inspect-proxy` helper is sandgate's side of `bench inspect`, in a
// process of its own (as mitmdump is), so that its CPU is its own. It
// serves two loopback listeners for one target:
//
//   - tunnel: sandgate's proxy.Server with the target allowed (HTTP
//     CONNECT, splice), no inspection;
//   - inspect: another proxy.Server whose policy also inspects the target
//     (as `--inspect HOST:PORT` does: every request allowed, each decided
//     and audited by method and path), with the run's inspect.Authority and
//     the upstream's CA as Options.Authority and Options.UpstreamRoots.
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

// inspectHarness is the two proxies.
type inspectHarness struct {
	auth      *inspect.Authority
	srv, isrv *proxy.Server
	tunnelLn  net.Listener
	inspectLn net.Listener
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
	ipol, err := policy.New(policy.Config{Allow: []string{target}, Inspect: []string{target}})
	if err != nil {
		return nil, fmt.Errorf("inspecting policy: %w", err)
	}
	if !ipol.Inspects(host, port) {
		return nil, fmt.Errorf("the policy --inspect %s does not inspect it", target)
	}
	auth, err := inspect.NewAuthority()
	if err != nil {
		return nil, err
	}
	h := &inspectHarness{auth: auth}
	if h.tunnelLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if h.inspectLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		h.tunnelLn.Close()
		return nil, err
	}
	lim := proxy.Limits{MaxConns: 4096}
	h.srv = proxy.New(proxy.Options{Gate: &egress.Gate{Policy: pol}, Limits: lim})
	h.isrv = proxy.New(proxy.Options{Gate: &egress.Gate{Policy: ipol}, Limits: lim, Authority: auth, UpstreamRoots: pool})
	go h.srv.ServeHTTP(h.tunnelLn)
	go h.isrv.ServeHTTP(h.inspectLn)
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
	defer cancel()
	_ = h.srv.Shutdown(ctx)
	_ = h.isrv.Shutdown(ctx)
}
