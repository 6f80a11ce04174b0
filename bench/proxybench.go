//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/proxy"
)

// logBuf keeps the first lines a proxy logs, for the report.
type logBuf struct {
	mu    sync.Mutex
	lines []string
	n     int
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.lines) < 5 {
		l.lines = append(l.lines, fmt.Sprintf(format, args...))
	}
}

func (l *logBuf) summary() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, append([]string(nil), l.lines...)
}

// inProcProxy is a proxy served from this process: sandgate's, or the
// reference relay.
type inProcProxy struct {
	ln       net.Listener
	done     chan error
	shutdown func(context.Context)
}

// startProxy serves sandgate's HTTP proxy (impl "sandgate") or the reference
// relay (impl "relay") on a new loopback listener, allowing exactly allow.
// The proxy packages may still be unimplemented (they panic); that is
// reported as an error.
func startProxy(impl, allow string, maxConns int, logf func(string, ...any)) (p *inProcProxy, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("sandgate's proxy is not usable yet (panic: %v)", v)
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p = &inProcProxy{ln: ln, done: make(chan error, 1), shutdown: func(context.Context) {}}
	serve := func() error { return serveRelay(ln, allow) }
	if impl != "relay" {
		pol, err := policy.New(policy.Config{Allow: []string{allow}})
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("policy: %w", err)
		}
		srv := proxy.New(proxy.Options{
			Gate:   &egress.Gate{Policy: pol},
			Limits: proxy.Limits{MaxConns: maxConns},
			Logf:   logf,
		})
		serve = func() error { return srv.ServeHTTP(ln) }
		p.shutdown = func(ctx context.Context) { _ = srv.Shutdown(ctx) }
	}
	go func() {
		defer func() {
			if v := recover(); v != nil {
				p.done <- fmt.Errorf("ServeHTTP panicked: %v", v)
			}
		}()
		p.done <- serve()
	}()
	// Make sure it is still serving before measuring.
	select {
	case err := <-p.done:
		ln.Close()
		return nil, fmt.Errorf("ServeHTTP returned at once: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	return p, nil
}

func (p *inProcProxy) addr() string { return p.ln.Addr().String() }

func (p *inProcProxy) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	func() {
		defer func() { _ = recover() }()
		p.shutdown(ctx)
	}()
	p.ln.Close()
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
	}
}

// benchProxy is `bench proxy` (issue 2).
func benchProxy(cfg *config, out io.Writer, s *score) {
	tgt, err := startTarget()
	if err != nil {
		fmt.Fprintf(out, "proxy: cannot start the target: %v\n", err)
		s.failed += 5
		return
	}
	defer tgt.close()
	allow := tgt.addr()
	var logs logBuf
	put := startProxyUnderTest(cfg, allow, logs.logf)
	if put.child != nil {
		defer put.child.stop()
	}
	t, goals := proxyTable(cfg, s, allow, put)

	srcs := []*source{newSource(cfg.sender), newSource(cfg.sender), newSource(cfg.sender), newSource(cfg.sender)}
	defer func() {
		for _, s := range srcs {
			s.close()
		}
	}()
	t.note("bulk: %d pairs of %s (split over the tunnels), sender %s, sink %s; fresh: %d pairs of %d clients × %v, each connect (+CONNECT), 64 B echo, close",
		cfg.rounds, formatBytes(int64(cfg.bulkBytes)), srcs[0].kind(), sinkKind(cfg.sink), cfg.freshRounds, cfg.freshClients, cfg.freshDur)

	m := &proxyMeasure{
		cfg:      cfg,
		out:      out,
		put:      put,
		direct:   dialer{target: allow, timeout: 10 * time.Second},
		viaProxy: dialer{proxy: put.addr, target: allow, timeout: 10 * time.Second},
	}
	b1, b4, fr := pairedRounds(cfg, func(p *pairs, proxied bool, tunnels int) {
		if tunnels == 0 {
			m.measure(p, proxied, func(d dialer) result { return fresh(d, cfg.freshClients, cfg.freshDur) })
			return
		}
		m.measure(p, proxied, func(d dialer) result { return bulk(d, tunnels, int64(cfg.bulkBytes), cfg.bulkTimeout, srcs, cfg.sink) })
	})
	pairedRows(cfg, t, goals, b1, b4, fr)
	cpuNotes(t, b1, b4, fr, put.child != nil)
	if put.inProc != nil {
		put.inProc.stop()
	}
	if put.child != nil {
		childLogNote(t, put.child)
	}
	if n, lines := logs.summary(); n > 0 {
		t.note("the in-process proxy logged %d lines; first: %s", n, strings.Join(lines, " | "))
	}
	acceptNote(t, tgt)

	if cfg.idleTunnels > 0 {
		idleRows(cfg, t, s)
	}
	t.print(out)
}

// proxyUnderTest is the proxy the bulk and fresh measurements go through:
// in this process or in a child (-proxy-child), or the error that kept it
// from starting.
type proxyUnderTest struct {
	inProc *inProcProxy
	child  *proxyChild
	err    error
	addr   string
	where  string // where it runs, for the report
}

// startProxyUnderTest starts the proxy cfg asks for, allowing exactly
// allow; an in-process proxy logs to logf.
func startProxyUnderTest(cfg *config, allow string, logf func(string, ...any)) *proxyUnderTest {
	put := &proxyUnderTest{where: "in this process"}
	if cfg.proxyChild {
		if put.child, put.err = startProxyChild(cfg.proxyImpl, allow, 0, nil); put.err == nil {
			put.addr = put.child.addr
			put.where = fmt.Sprintf("in a child process (pid %d)", put.child.cmd.Process.Pid)
		}
	} else if put.inProc, put.err = startProxy(cfg.proxyImpl, allow, 0, logf); put.err == nil {
		put.addr = put.inProc.addr()
	}
	return put
}

// proxyTable makes the table of `bench proxy` with its opening notes, and
// the score its goals count in: a throwaway one for the reference relay,
// whose PASS/MISS is shown for comparison only.
func proxyTable(cfg *config, s *score, allow string, put *proxyUnderTest) (*table, *score) {
	t := &table{
		title:  "proxy (issue 2): direct vs through sandgate's HTTP CONNECT proxy",
		header: []string{"measurement", "direct", "sandgate", "ratio", "per-round", "goal", "result"},
	}
	where := put.where
	goals := s
	if cfg.proxyImpl == "relay" {
		t.title = "proxy: direct vs through the REFERENCE RELAY (-proxy-impl relay: not sandgate; PASS/MISS shown for comparison, not counted)"
		t.header[2] = "relay"
		where = "(bare io.Copy CONNECT relay) " + where
		goals = &score{}
	}
	t.note("target %s and clients in this process, the proxy %s (policy: --allow %s)", allow, where, allow)
	t.note("ratio: median over the interleaved pairs of sandgate / direct (per-round: lowest–highest pair); direct and sandgate columns: totals over all rounds")
	if put.err != nil {
		t.note("sandgate proxy: %v", put.err)
	}
	return t, goals
}

// proxyMeasure measures one side of a pair, direct or through the proxy
// under test, with the CPU this process (and a proxy child) spent on it.
type proxyMeasure struct {
	cfg              *config
	out              io.Writer
	put              *proxyUnderTest
	direct, viaProxy dialer
}

// measure runs f over the side's dialer and adds its result to p; the
// proxied side of a proxy that did not start is one error.
func (m *proxyMeasure) measure(p *pairs, proxied bool, f func(d dialer) result) {
	if proxied && m.put.err != nil {
		p.proxied = append(p.proxied, result{FirstErr: m.put.err.Error(), Errors: 1})
		return
	}
	d := m.direct
	if proxied {
		d = m.viaProxy
	}
	pc := m.put.child
	self0 := cpuSelf()
	var child0 float64
	if pc != nil {
		child0 = cpuOf(pc.cmd.Process.Pid)
	}
	r := f(d)
	r.CPU = cpuSelf() - self0
	if pc != nil {
		r.ProxyCPU = cpuOf(pc.cmd.Process.Pid) - child0
	}
	p.add(m.cfg, m.out, proxied, r)
}

// childLogNote says how many lines a proxy child logged, and the first few.
func childLogNote(t *table, pc *proxyChild) {
	if se := strings.TrimSpace(pc.stderr.String()); se != "" {
		lines := strings.Split(se, "\n")
		t.note("the proxy child logged %d lines; first: %s", len(lines), strings.Join(lines[:min(3, len(lines))], " | "))
	}
}

// acceptNote reports a target whose accept failed: a limit of this machine
// rather than of the proxy.
func acceptNote(t *table, tgt *target) {
	if n, e := tgt.acceptErrors(); n > 0 {
		t.note("LIMIT? the target's accept failed %d times, last: %s", n, e)
	}
}

// proxyChild is sandgate's proxy running in a child process (this binary in
// its `_proxy` mode), so that its RSS and descriptors are its own.
type proxyChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	addr   string
	stderr *limitedBuf
	exited chan struct{} // closed once the child has been waited for
}

// limitedBuf keeps the first 64 KiB written to it.
type limitedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 64<<10 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startProxyChild(impl, allow string, maxConns int, stacks io.Writer) (*proxyChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "_proxy", "-impl", impl, "-allow", allow, "-max-conns", strconv.Itoa(maxConns), "-lifetime", "10m")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	pc := &proxyChild{cmd: cmd, stdin: stdin, stderr: &limitedBuf{}, exited: make(chan struct{})}
	cmd.Stderr = pc.stderr
	if stacks != nil {
		cmd.Stderr = io.MultiWriter(pc.stderr, stacks)
		cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(pc.exited) }()
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		if a, found := strings.CutPrefix(l, "ready "); ok && found {
			pc.addr = a
			return pc, nil
		}
		pc.stop()
		return nil, fmt.Errorf("proxy child did not start: %q %s", l, strings.TrimSpace(pc.stderr.String()))
	case <-time.After(10 * time.Second):
		pc.stop()
		return nil, errors.New("proxy child did not start within 10s")
	}
}

// stop closes the child's stdin (its signal to exit) and kills it if it has
// not exited within 5 seconds.
func (pc *proxyChild) stop() {
	pc.stdin.Close()
	select {
	case <-pc.exited:
	case <-time.After(5 * time.Second):
		_ = pc.cmd.Process.Kill()
		<-pc.exited
	}
}

// proxyChildMain is the `_proxy` helper: it serves sandgate's HTTP proxy on
// 127.0.0.1, prints "ready ADDR", and exits when stdin closes or after
// -lifetime.
func proxyChildMain(args []string) int {
	fs := flag.NewFlagSet("_proxy", flag.ContinueOnError)
	allow := fs.String("allow", "", "allow entry")
	impl := fs.String("impl", "sandgate", "sandgate or relay")
	maxConns := fs.Int("max-conns", 0, "proxy.Limits.MaxConns (0: the proxy's default)")
	lifetime := fs.Duration("lifetime", 10*time.Minute, "exit after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "proxy: "+format+"\n", a...) }
	p, err := startProxy(*impl, *allow, *maxConns, logf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		return 1
	}
	fmt.Printf("ready %s\n", p.addr())
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	select {
	case <-stdinClosed:
	case <-time.After(*lifetime):
	case err := <-p.done:
		fmt.Fprintf(os.Stderr, "proxy stopped: %v\n", err)
		return 1
	}
	p.stop()
	return 0
}

// cpuNotes says how much CPU each side spent per unit of work: on a machine
// with few cores a proxied operation that costs more CPU in total cannot
// reach the direct rate.
func cpuNotes(t *table, b1, b4, fr pairs, childProxy bool) {
	per := func(rs []result, perOp bool) (self, proxy float64) {
		var work, cs, cp float64
		for _, r := range rs {
			if perOp {
				work += float64(r.Ops)
			} else {
				work += float64(r.Bytes) / 1e9
			}
			cs += r.CPU
			cp += r.ProxyCPU
		}
		if work == 0 {
			return 0, 0
		}
		return cs / work, cp / work
	}
	who := "CPU of this process (clients, target and the in-process proxy)"
	if childProxy {
		who = "CPU of this process (clients, target) + the proxy child"
	}
	d1, _ := per(b1.direct, false)
	p1, q1 := per(b1.proxied, false)
	d4, _ := per(b4.direct, false)
	p4, q4 := per(b4.proxied, false)
	df, _ := per(fr.direct, true)
	pf, qf := per(fr.proxied, true)
	t.note("%s: bulk 1 tunnel %.2f s/GB direct vs %.2f%s via proxy; bulk 4 tunnels %.2f vs %.2f%s; fresh tunnel %.0f µs direct vs %.0f%s µs via proxy",
		who, d1, p1, plusProxy(q1, childProxy, "%.2f"), d4, p4, plusProxy(q4, childProxy, "%.2f"), df*1e6, pf*1e6, plusProxy(qf*1e6, childProxy, "%.0f"))
}

func plusProxy(v float64, child bool, format string) string {
	if !child {
		return ""
	}
	return " + " + fmt.Sprintf(format, v)
}

func sinkKind(s string) string {
	if s == "discard" {
		return "io.Copy to io.Discard (8 KiB reads)"
	}
	return "reads 256 KiB at a time"
}
