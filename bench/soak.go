//go:build linux

package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/socks5"
)

// soakProxy is a `sandgate proxy` process started under a descriptor limit
// (soft and hard), whose figures the soak reads from /proc and from the
// line it prints on SIGUSR1.
type soakProxy struct {
	cmd       *exec.Cmd
	limit     int
	httpAddr  string
	socksAddr string
	statsc    chan string
	exited    chan struct{}

	mu     sync.Mutex
	lines  int      // other lines it logged
	first  []string // the first of them
	emfile bool     // it said "too many open files"
}

// startSoakProxy runs `sandgate proxy` allowing only allow, through this
// program's _nofile helper so that its RLIMIT_NOFILE is limit from the start.
func startSoakProxy(env []string, benchBin, sg string, limit int, allow string) (*soakProxy, error) {
	cmd := exec.Command(benchBin, "_nofile", strconv.Itoa(limit), sg, "proxy",
		"--http", "127.0.0.1:0", "--socks", "127.0.0.1:0", "--allow", allow, "--drain-timeout", "2s")
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &soakProxy{cmd: cmd, limit: limit, statsc: make(chan string, 4), exited: make(chan struct{})}
	addrs := make(chan [2]string, 1)
	go p.readLog(stderr, addrs)
	go func() { _ = cmd.Wait(); close(p.exited) }()
	select {
	case a := <-addrs:
		p.httpAddr, p.socksAddr = a[0], a[1]
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("sandgate proxy exited at start: %s", strings.Join(p.firstLines(), " | "))
	case <-time.After(10 * time.Second):
		p.stop()
		return nil, errors.New("sandgate proxy did not say where it listens within 10s")
	}
}

// readLog sorts the proxy's stderr: stats lines, the listening addresses,
// and everything else (kept in part, and searched for EMFILE).
func (p *soakProxy) readLog(r io.Reader, addrs chan<- [2]string) {
	var a [2]string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "sandgate: stats: ") {
			select {
			case p.statsc <- l:
			default:
			}
			continue
		}
		if rest, ok := strings.CutPrefix(l, "sandgate: HTTP proxy listening on "); ok {
			a[0] = rest
		} else if rest, ok := strings.CutPrefix(l, "sandgate: SOCKS5 proxy listening on "); ok {
			a[1] = rest
		}
		if strings.Contains(l, " proxy listening on ") {
			if a[0] != "" && a[1] != "" {
				addrs <- a
			}
			continue
		}
		p.mu.Lock()
		p.lines++
		if len(p.first) < 8 {
			p.first = append(p.first, l)
		}
		if strings.Contains(l, "too many open files") {
			p.emfile = true
		}
		p.mu.Unlock()
	}
}

func (p *soakProxy) firstLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.first...)
}

func (p *soakProxy) sawEMFILE() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.emfile
}

func (p *soakProxy) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// soakSnap is what the proxy process holds at one moment.
type soakSnap struct {
	fds        fdCounts
	rssKiB     int64
	goroutines int
	conns      int
	pipes      int
	maxConns   int
	err        error
}

// snap reads the proxy's descriptors and RSS and asks it (SIGUSR1) for its
// goroutines, connections and pipes.
func (p *soakProxy) snap() soakSnap {
	var s soakSnap
	pid := p.cmd.Process.Pid
	for len(p.statsc) > 0 {
		<-p.statsc // a stale line
	}
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		s.err = fmt.Errorf("signalling the proxy: %w", err)
		return s
	}
	select {
	case l := <-p.statsc:
		var idle, most int
		if _, err := fmt.Sscanf(l, "sandgate: stats: %d connections (max_conns %d), %d goroutines, %d splice pipes (%d idle, at most %d)",
			&s.conns, &s.maxConns, &s.goroutines, &s.pipes, &idle, &most); err != nil {
			s.err = fmt.Errorf("reading %q: %w", l, err)
		}
	case <-time.After(5 * time.Second):
		s.err = errors.New("the proxy did not answer SIGUSR1 within 5s")
	}
	var err error
	if s.fds, err = readFDs(pid); err != nil && s.err == nil {
		s.err = err
	}
	m, err := readProcMem(pid)
	if err != nil && s.err == nil {
		s.err = err
	}
	s.rssKiB = m.RSS
	return s
}

// peakOf is the larger of two snapshots, figure by figure.
func peakOf(a, b soakSnap) soakSnap {
	if b.fds.Total > a.fds.Total {
		a.fds = b.fds
	}
	a.rssKiB, a.goroutines = max(a.rssKiB, b.rssKiB), max(a.goroutines, b.goroutines)
	a.conns, a.pipes = max(a.conns, b.conns), max(a.pipes, b.pipes)
	if a.err == nil {
		a.err = b.err
	}
	return a
}

// settle waits (up to 20s) for the proxy to hold no connection and no pipe
// and to be back to base's descriptors, and returns the last snapshot.
func (p *soakProxy) settle(base soakSnap) soakSnap {
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := p.snap()
		if s.err != nil || time.Now().After(deadline) ||
			(s.conns == 0 && s.pipes == 0 && s.fds.Total <= base.fds.Total) {
			return s
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waveResult is one wave of tunnels.
type waveResult struct {
	opened, refused, failed int
	pingFailed              int
	firstErr                string
	took                    time.Duration
	conns                   []net.Conn
}

func (w *waveResult) fail(format string, a ...any) {
	w.failed++
	if w.firstErr == "" {
		w.firstErr = fmt.Sprintf(format, a...)
	}
}

// soakOpen opens n tunnels to target through p, alternating HTTP CONNECT and
// SOCKS5, conc at a time, each proven with the target's hold handshake. A
// refusal for lack of slots (503, SOCKS reply 1) is counted apart from
// every other failure.
func soakOpen(p *soakProxy, target string, n, conc int) *waveResult {
	w := &waveResult{}
	host, portText, _ := net.SplitHostPort(target)
	port, _ := strconv.Atoi(portText)
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				c, busy, err := openSoakTunnel(p, i%2 == 1, target, host, uint16(port))
				mu.Lock()
				switch {
				case err == nil:
					w.opened++
					w.conns = append(w.conns, c)
				case busy:
					w.refused++
				default:
					w.fail("tunnel %d: %v", i, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	w.took = time.Since(start)
	return w
}

func openSoakTunnel(p *soakProxy, socks bool, target, host string, port uint16) (net.Conn, bool, error) {
	addr := p.httpAddr
	if socks {
		addr = p.socksAddr
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, false, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if socks {
		_, err = socks5.Handshake(c, host, port, nil)
	} else {
		err = connectTunnel(c, target, 10*time.Second)
	}
	var re *socks5.ReplyError
	var he *refusedError
	busy := (errors.As(err, &re) && re.Code == 1) || (errors.As(err, &he) && he.busy())
	if err == nil {
		err = holdHandshake(c)
	}
	if err != nil {
		c.Close()
		return nil, busy, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, false, nil
}

// holdHandshake asks the target for an echoing connection and waits for it.
func holdHandshake(c net.Conn) error {
	b := [1]byte{opHold}
	if _, err := c.Write(b[:]); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != opHold {
		return fmt.Errorf("hold handshake: %v (got %q)", err, b[0])
	}
	return nil
}

// pingAll sends 4 KiB through every open tunnel and reads the echo, conc
// tunnels at a time, so that bytes move (and splice pipes are used) while
// the proxy holds every tunnel.
func (w *waveResult) pingAll(conc int) {
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	msg := make([]byte, 4<<10)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]byte, len(msg))
			for i := next.Add(1) - 1; i < int64(len(w.conns)); i = next.Add(1) - 1 {
				c := w.conns[i]
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				go func() { _, _ = c.Write(msg) }()
				if _, err := io.ReadFull(c, got); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	w.pingFailed = int(failed.Load())
}

func (w *waveResult) closeAll() {
	for _, c := range w.conns {
		c.Close()
	}
	w.conns = nil
}

// chainMain is the `_chain` helper, run as CMD by `sandgate run`: through
// the run's own proxy ($HTTP_PROXY) it opens a tunnel to the long-lived
// proxy at -inner, and through that one a tunnel (SOCKS5 with -socks, else
// HTTP CONNECT) to -target, then exchanges a few bytes with the target.
func chainMain(args []string) int {
	fs := flag.NewFlagSet("_chain", flag.ContinueOnError)
	inner := fs.String("inner", "", "the long-lived proxy, host:port")
	socks := fs.Bool("socks", false, "speak SOCKS5 to the long-lived proxy (else HTTP CONNECT)")
	target := fs.String("target", "", "target host:port")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	err := chain(*inner, *target, *socks)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench _chain: %v\n", err)
		return 1
	}
	return 0
}

func chain(inner, target string, socks bool) error {
	outer, err := proxyFromEnv()
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", outer, 10*time.Second)
	if err != nil {
		return fmt.Errorf("dialling the run's proxy %s: %w", outer, err)
	}
	defer c.Close()
	if err := connectTunnel(c, inner, 10*time.Second); err != nil {
		return fmt.Errorf("through the run's proxy to %s: %w", inner, err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if socks {
		host, portText, _ := net.SplitHostPort(target)
		port, _ := strconv.Atoi(portText)
		_, err = socks5.Handshake(c, host, uint16(port), nil)
	} else {
		err = connectTunnel(c, target, 10*time.Second)
	}
	if err != nil {
		return fmt.Errorf("through %s to %s: %w", inner, target, err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := holdHandshake(c); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "ping"); err != nil {
		return err
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		return fmt.Errorf("echo: %q, %v", got, err)
	}
	return nil
}

// noFileMain is the `_nofile N PROGRAM ARGS...` helper: it sets
// RLIMIT_NOFILE (soft and hard) to N and executes PROGRAM.
func noFileMain(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "bench _nofile: want N PROGRAM [ARGS...]")
		return 2
	}
	n, err := strconv.ParseUint(args[0], 10, 64)
	if err == nil {
		err = unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: n})
	}
	if err == nil {
		err = syscall.Exec(args[1], args[1:], os.Environ())
	}
	fmt.Fprintf(os.Stderr, "bench _nofile %s %s: %v\n", args[0], args[1], err)
	return 1
}

// soakBinaries builds sandgate and copies this program where `sandgate run`
// can execute it; it returns them and the environment for children.
func soakBinaries(cfg *config) (sg, benchBin string, env []string, cleanup func(), err error) {
	cleanup = func() {}
	dir := cfg.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "sandgate-soak-"); err != nil {
			return "", "", nil, cleanup, err
		}
		if !cfg.keep {
			cleanup = func() { os.RemoveAll(dir) }
		}
	} else if err = os.MkdirAll(dir, 0o755); err != nil {
		return "", "", nil, cleanup, err
	}
	_ = os.Chmod(dir, 0o755)
	if sg = cfg.sandgate; sg == "" {
		if sg, err = buildSandgate(cfg.srcDir, dir); err != nil {
			return "", "", nil, cleanup, err
		}
	}
	if benchBin, err = copySelf(dir); err != nil {
		return "", "", nil, cleanup, err
	}
	cfgHome := filepath.Join(dir, "xdg-config")
	_ = os.MkdirAll(cfgHome, 0o755)
	return sg, benchBin, append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome), cleanup, nil
}
