//go:build linux

package main

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The proxies of `bench inspect`, each a process of its own: sandgate's
// `_inspect-proxy` helper (tunnel and inspection) and mitmproxy's mitmdump.

// proc is a started proxy process and what it said on stderr.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // closing it tells the sandgate helper to stop
	stderr *limitedBuf
	exited chan struct{} // closed once the process has been waited for
}

// start starts cmd and waits for it in the background. The process is
// killed if the benchmark dies first (mitmdump would otherwise stay).
func (p *proc) start() error {
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.exited) }()
	return nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// gone reports whether the process has exited.
func (p *proc) gone() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop ends the process (stdin closed, then SIGINT, then SIGKILL).
func (p *proc) stop() {
	if p == nil || p.exited == nil {
		return
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
	for _, step := range []func(){func() {}, func() { p.cmd.Process.Signal(os.Interrupt) }, func() { p.cmd.Process.Kill() }} {
		step()
		select {
		case <-p.exited:
			return
		case <-time.After(3 * time.Second):
		}
	}
	<-p.exited
}

// sandgateProxies is the `_inspect-proxy` child: the tunnel and the
// inspecting listener, and the run CA the client trusts for the latter.
type sandgateProxies struct {
	proc
	tunnel, inspect string
	runCA           *x509.CertPool
}

// startSandgateProxies starts the helper for upstream (its CA in caFile),
// writing a CPU profile of it to profile unless that is "".
func startSandgateProxies(dir, upstream, caFile, profile string) (*sandgateProxies, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	runCA := filepath.Join(dir, "sandgate-run-ca.pem")
	cmd := exec.Command(self, "_inspect-proxy", "-target", upstream, "-roots", caFile, "-ca-out", runCA, "-cpuprofile", profile)
	sp := &sandgateProxies{proc: proc{cmd: cmd, stderr: &limitedBuf{}}}
	cmd.Stderr = sp.stderr
	if sp.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := sp.start(); err != nil {
		return nil, fmt.Errorf("starting %s _inspect-proxy: %w", self, err)
	}
	line, err := readLineTimeout(out, 10*time.Second)
	if err == nil {
		sp.tunnel, sp.inspect, err = parseHarnessLine(line)
	}
	if err == nil {
		sp.runCA, err = poolFromFile(runCA)
	}
	if err != nil {
		sp.stop()
		return nil, fmt.Errorf("the _inspect-proxy helper: %w (stderr: %s)", err, strings.TrimSpace(sp.stderr.String()))
	}
	return sp, nil
}

// parseHarnessLine reads "tunnel ADDR inspect ADDR", the helper's first
// line.
func parseHarnessLine(line string) (tunnel, inspect string, err error) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "tunnel" || f[2] != "inspect" {
		return "", "", fmt.Errorf("unexpected first line %q, want \"tunnel ADDR inspect ADDR\"", line)
	}
	for _, a := range []string{f[1], f[3]} {
		if _, _, err := splitTarget(a); err != nil {
			return "", "", fmt.Errorf("first line %q: %w", line, err)
		}
	}
	return f[1], f[3], nil
}

// readLineTimeout reads one line from r within d.
func readLineTimeout(r io.Reader, d time.Duration) (string, error) {
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- res{strings.TrimSpace(line), err}
	}()
	select {
	case x := <-ch:
		if x.err != nil && x.line == "" {
			return "", fmt.Errorf("no first line: %w", x.err)
		}
		return x.line, nil
	case <-time.After(d):
		return "", fmt.Errorf("no first line within %s", d)
	}
}

// poolFromFile reads PEM certificates into a pool.
func poolFromFile(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", file)
	}
	return pool, nil
}

// mitmdumpArgs are the options mitmdump runs with: regular (forward
// proxy) mode on a loopback port; upstream certificates verified against
// the bench's CA only (ssl_insecure=false is the default, said anyway);
// the upstream's certificate looked up before the client's handshake is
// answered (upstream_cert, the default); bodies from 1 MiB up streamed
// instead of buffered whole (not the default: without it a 256 MiB body is
// held in memory before the client sees its first byte); no flow output.
func mitmdumpArgs(confdir, caFile string, port int) []string {
	return []string{
		"--mode", "regular",
		"--listen-host", "127.0.0.1", "--listen-port", strconv.Itoa(port),
		"--set", "confdir=" + confdir,
		"--set", "ssl_insecure=false",
		"--set", "ssl_verify_upstream_trusted_ca=" + caFile,
		"--set", "upstream_cert=true",
		"--set", "stream_large_bodies=1m",
		"--set", "flow_detail=0",
		"--set", "termlog_verbosity=warn",
	}
}

// mitmdump is a running mitmdump and the CA it made in its confdir.
type mitmdump struct {
	proc
	addr    string
	ca      *x509.CertPool
	version string
}

// startMitmdump runs bin with a fresh confdir under dir, waits until it
// listens and reads the CA it generated.
func startMitmdump(bin, dir, caFile string) (*mitmdump, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%s not found (install mitmproxy: sudo scripts/install-bench-deps.sh, or pass -mitmdump PATH): %w", bin, err)
	}
	version := "unknown version"
	if out, err := exec.Command(path, "--version").Output(); err == nil {
		version = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	confdir := filepath.Join(dir, "mitmproxy")
	if err := os.MkdirAll(confdir, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(path, mitmdumpArgs(confdir, caFile, port)...)
	m := &mitmdump{proc: proc{cmd: cmd, stderr: &limitedBuf{}}, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), version: version}
	cmd.Stdout, cmd.Stderr = m.stderr, m.stderr
	if err := m.start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || m.gone() {
			m.stop()
			return nil, fmt.Errorf("mitmdump did not listen on %s within 20s (output: %s)", m.addr, strings.TrimSpace(m.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m.ca, err = poolFromFile(filepath.Join(confdir, "mitmproxy-ca-cert.pem")); err != nil {
		m.stop()
		return nil, fmt.Errorf("mitmdump's CA: %w", err)
	}
	return m, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
