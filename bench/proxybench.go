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
	"sync/atomic"
	"syscall"
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
	var (
		px      *inProcProxy
		pc      *proxyChild
		perr    error
		pxAddr  string
		pxWhere = "in this process"
	)
	if cfg.proxyChild {
		if pc, perr = startProxyChild(cfg.proxyImpl, allow, 0, nil); perr == nil {
			pxAddr = pc.addr
			pxWhere = fmt.Sprintf("in a child process (pid %d)", pc.cmd.Process.Pid)
			defer pc.stop()
		}
	} else if px, perr = startProxy(cfg.proxyImpl, allow, 0, logs.logf); perr == nil {
		pxAddr = px.addr()
	}

	t := &table{
		title:  "proxy (issue 2): direct vs through sandgate's HTTP CONNECT proxy",
		header: []string{"measurement", "direct", "sandgate", "ratio", "per-round", "goal", "result"},
	}
	if cfg.proxyImpl == "relay" {
		t.title = "proxy: direct vs through the REFERENCE RELAY (-proxy-impl relay: not sandgate; PASS/MISS shown for comparison, not counted)"
		t.header[2] = "relay"
		pxWhere = "(bare io.Copy CONNECT relay) " + pxWhere
	}
	goals := s
	if cfg.proxyImpl == "relay" {
		goals = &score{}
	}
	t.note("target %s and clients in this process, the proxy %s (policy: --allow %s)", allow, pxWhere, allow)
	t.note("ratio: median over the interleaved pairs of sandgate / direct (per-round: lowest–highest pair); direct and sandgate columns: totals over all rounds")
	if perr != nil {
		t.note("sandgate proxy: %v", perr)
	}

	srcs := []*source{newSource(cfg.sender), newSource(cfg.sender), newSource(cfg.sender), newSource(cfg.sender)}
	defer func() {
		for _, s := range srcs {
			s.close()
		}
	}()
	t.note("bulk: %d pairs of %s (split over the tunnels), sender %s, sink %s; fresh: %d pairs of %d clients × %v, each connect (+CONNECT), 64 B echo, close",
		cfg.rounds, formatBytes(int64(cfg.bulkBytes)), srcs[0].kind(), sinkKind(cfg.sink), cfg.freshRounds, cfg.freshClients, cfg.freshDur)

	direct := dialer{target: allow, timeout: 10 * time.Second}
	viaProxy := dialer{proxy: pxAddr, target: allow, timeout: 10 * time.Second}
	var b1, b4, fr pairs
	notProxied := result{FirstErr: "proxy not available", Errors: 1}
	if perr != nil {
		notProxied.FirstErr = perr.Error()
	}
	measure := func(p *pairs, proxied bool, f func(d dialer) result) {
		if proxied && perr != nil {
			p.proxied = append(p.proxied, notProxied)
			return
		}
		d := direct
		if proxied {
			d = viaProxy
		}
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
		if proxied {
			p.proxied = append(p.proxied, r)
		} else {
			p.direct = append(p.direct, r)
		}
		verbose(cfg, out, r)
	}
	for round := 0; round < cfg.rounds; round++ {
		for _, proxied := range pairOrder(round) {
			measure(&b1, proxied, func(d dialer) result { return bulk(d, 1, int64(cfg.bulkBytes), cfg.bulkTimeout, srcs, cfg.sink) })
		}
		for _, proxied := range pairOrder(round) {
			measure(&b4, proxied, func(d dialer) result { return bulk(d, 4, int64(cfg.bulkBytes), cfg.bulkTimeout, srcs, cfg.sink) })
		}
	}
	for round := 0; round < cfg.freshRounds; round++ {
		for _, proxied := range pairOrder(round) {
			measure(&fr, proxied, func(d dialer) result { return fresh(d, cfg.freshClients, cfg.freshDur) })
			time.Sleep(100 * time.Millisecond) // let closing sockets settle
		}
	}
	ratioRow(t, goals, "bulk, 1 tunnel", b1, false, 0.6)
	ratioRow(t, goals, "bulk, 4 tunnels", b4, false, 0.6)
	ratioRow(t, goals, fmt.Sprintf("fresh tunnels, %d clients", cfg.freshClients), fr, true, 0.7)
	cpuNotes(t, b1, b4, fr, pc != nil)
	if px != nil {
		px.stop()
	}
	if pc != nil {
		if se := strings.TrimSpace(pc.stderr.String()); se != "" {
			lines := strings.Split(se, "\n")
			t.note("the proxy child logged %d lines; first: %s", len(lines), strings.Join(lines[:min(3, len(lines))], " | "))
		}
	}
	if n, lines := logs.summary(); n > 0 {
		t.note("the in-process proxy logged %d lines; first: %s", n, strings.Join(lines, " | "))
	}
	if n, e := tgt.acceptErrors(); n > 0 {
		t.note("LIMIT? the target's accept failed %d times, last: %s", n, e)
	}

	if cfg.idleTunnels > 0 {
		idleRows(cfg, t, s)
	}
	t.print(out)
}

// pairOrder alternates which side of a pair goes first (false: direct).
func pairOrder(round int) []bool {
	if round%2 == 1 {
		return []bool{true, false}
	}
	return []bool{false, true}
}

func verbose(cfg *config, out io.Writer, r result) {
	if !cfg.verbose {
		return
	}
	fmt.Fprintf(out, "  %-6s %-22s bytes=%d ops=%d %.3fs errors=%d %s\n", r.Test, r.Via, r.Bytes, r.Ops, r.Seconds, r.Errors, r.FirstErr)
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

// idleRows measures the proxy's RSS per idle tunnel with cfg.idleTunnels
// open. The proxy runs in a child process; the target and the clients run
// in this one (2 descriptors per tunnel here, at least 2 in the proxy).
func idleRows(cfg *config, t *table, s *score) {
	n := cfg.idleTunnels
	name := fmt.Sprintf("RSS per idle tunnel (%d open)", n)
	held := fmt.Sprintf("%d tunnels held, no error", n)
	fail := func(format string, a ...any) {
		t.add(name, "", "-", "", "", "≤ 16 KiB", s.judge(false, false))
		t.add(held, "", "-", "", "", "all", s.judge(false, false))
		t.note("idle tunnels: "+format, a...)
	}
	if need := uint64(2*n + 64); noFileLimit() < need {
		t.note("LIMIT: this process needs about %d descriptors for %d tunnels (client + target ends) but RLIMIT_NOFILE is %d", need, n, noFileLimit())
	}
	tgt, err := startTarget()
	if err != nil {
		fail("cannot start target: %v", err)
		return
	}
	defer tgt.close()
	var stacks *os.File
	if cfg.idleStacks != "" {
		if stacks, err = os.Create(cfg.idleStacks); err != nil {
			fail("%v", err)
			return
		}
		defer stacks.Close()
	}
	var stacksW io.Writer
	if stacks != nil {
		stacksW = stacks
	}
	pc, err := startProxyChild("sandgate", tgt.addr(), n+256, stacksW)
	if err != nil {
		fail("%v", err)
		return
	}
	defer pc.stop()
	pid := pc.cmd.Process.Pid
	childNoFile := procNoFile(pid)
	d := dialer{proxy: pc.addr, target: tgt.addr(), timeout: 10 * time.Second}

	openHold := func() (*net.TCPConn, error) {
		c, err := d.dial()
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(d.timeout))
		var b [1]byte
		b[0] = opHold
		if _, err = c.Write(b[:]); err == nil {
			_, err = io.ReadFull(c, b[:])
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("tunnel to the hold server: %w", err)
		}
		_ = c.SetDeadline(time.Time{})
		return c, nil
	}
	// Warm up the proxy's pools and code paths, then take the baseline.
	for i := 0; i < 16; i++ {
		if c, err := openHold(); err == nil {
			c.Close()
		} else {
			fail("warm-up tunnel failed: %v", err)
			return
		}
	}
	time.Sleep(500 * time.Millisecond)
	before, err := readProcMem(pid)
	if err != nil {
		fail("%v", err)
		return
	}
	fdsBefore, _ := readFDs(pid)

	var (
		mu       sync.Mutex
		conns    = make([]*net.TCPConn, 0, n)
		next     atomic.Int64
		errs     atomic.Int64
		firstErr string
		limit    string
		wg       sync.WaitGroup
	)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	stopAt := start.Add(cfg.idleTimeout)
	for w := 0; w < cfg.idleConc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && errs.Load() < 50 && time.Now().Before(stopAt) {
				c, err := openHold()
				mu.Lock()
				if err != nil {
					errs.Add(1)
					if firstErr == "" {
						firstErr = fmt.Sprintf("tunnel %d: %v", len(conns)+1, err)
					}
					if limit == "" {
						limit = limitOf(err)
					}
				} else {
					conns = append(conns, c)
					if cfg.verbose && len(conns)%500 == 0 {
						m, _ := readProcMem(pid)
						f, _ := readFDs(pid)
						fmt.Fprintf(os.Stderr, "  idle: %d tunnels open after %v; proxy VmRSS %d KiB, %v\n", len(conns), time.Since(start).Round(time.Millisecond), m.RSS, f)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	openTime := time.Since(start)
	time.Sleep(time.Second) // let the proxy settle
	after, merr := readProcMem(pid)
	fdsAfter, _ := readFDs(pid)
	time.Sleep(3 * time.Second) // do descriptors held briefly go away?
	fdsLater, _ := readFDs(pid)
	later, _ := readProcMem(pid)

	if stacks != nil {
		// SIGQUIT makes the Go runtime print every goroutine's stack and exit.
		_ = pc.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-pc.exited:
		case <-time.After(10 * time.Second):
		}
		t.note("idle: the proxy child's goroutine stacks (SIGQUIT, taken with the 3 s later figures) are in %s; the tunnels were not pinged", cfg.idleStacks)
	}
	// Ping every open tunnel once to prove it still works end to end.
	var pingErrs int
	var pingFirst string
	for _, c := range conns {
		if stacks != nil {
			break
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b := [1]byte{'p'}
		_, err := c.Write(b[:])
		if err == nil {
			_, err = io.ReadFull(c, b[:])
		}
		if err != nil {
			pingErrs++
			if pingFirst == "" {
				pingFirst = err.Error()
			}
		}
	}

	opened := len(conns)
	if merr != nil {
		fail("reading the proxy's RSS: %v (did it die? stderr: %s)", merr, strings.TrimSpace(pc.stderr.String()))
		return
	}
	perTunnel := float64(after.RSS-before.RSS) / float64(max(opened, 1))
	t.add(name, "", roundKiB(perTunnel), "", "", "≤ 16 KiB", s.judge(opened > 0, perTunnel <= 16))
	heldOK := opened == n && errs.Load() == 0 && pingErrs == 0
	t.add(held, "", fmt.Sprintf("%d held", opened-pingErrs), "", "", "all", s.judge(true, heldOK))
	maxNote := ""
	if n > proxy.DefaultMaxConns {
		maxNote = fmt.Sprintf(": the proxy's default %d would refuse more", proxy.DefaultMaxConns)
	}
	t.note("idle: proxy in a child process (pid %d, RLIMIT_NOFILE %d, MaxConns %d%s); target and clients in this process; %d tunnels opened in %v (%.0f /s, %d openers)",
		pid, childNoFile, n+256, maxNote, opened, openTime.Round(time.Millisecond), float64(opened)/openTime.Seconds(), cfg.idleConc)
	t.note("idle: proxy VmRSS %d KiB → %d KiB (RssAnon %d → %d KiB, threads %d → %d)", before.RSS, after.RSS, before.Anon, after.Anon, before.Threads, after.Threads)
	t.note("idle: proxy descriptors %v → %v (%.1f per tunnel)", fdsBefore, fdsAfter, float64(fdsAfter.Total-fdsBefore.Total)/float64(max(opened, 1)))
	t.note("idle: 3 s later, proxy VmRSS %d KiB, %v", later.RSS, fdsLater)
	if lim := childNoFile; lim > 0 && int64(fdsAfter.Total) >= lim-16 {
		t.note("LIMIT HIT: the proxy process holds %d descriptors of its RLIMIT_NOFILE %d", fdsAfter.Total, lim)
	}
	if e := errs.Load(); e > 0 {
		t.note("idle: %d tunnels failed to open (stopped after 50 errors or the %v limit); first: %s", e, cfg.idleTimeout, firstErr)
	}
	if opened < n && errs.Load() == 0 {
		t.note("idle: only %d of %d tunnels opened within %v", opened, n, cfg.idleTimeout)
	}
	if limit != "" {
		t.note("LIMIT HIT opening idle tunnels: %s", limit)
	}
	if pingErrs > 0 {
		t.note("idle: %d open tunnels failed a 1-byte ping after the measurement; first: %s", pingErrs, pingFirst)
	}
	if n, e := tgt.acceptErrors(); n > 0 {
		t.note("LIMIT? the target's accept failed %d times, last: %s", n, e)
	}
	if se := strings.TrimSpace(pc.stderr.String()); se != "" && stacks == nil {
		lines := strings.Split(se, "\n")
		t.note("the proxy child logged %d lines; first: %s", len(lines), strings.Join(lines[:min(3, len(lines))], " | "))
	}
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
