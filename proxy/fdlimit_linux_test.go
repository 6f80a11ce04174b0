package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/internal/socks5"
	"github.com/sandgate/sandgate/policy"
)

// fdChildEnv makes the test binary a proxy child with RLIMIT_NOFILE (soft
// and hard) lowered to its value: the descriptor tests need a process whose
// descriptors are the proxy's alone.
const fdChildEnv = "SANDGATE_TEST_PROXY_NOFILE"

func TestMain(m *testing.M) {
	if v := os.Getenv(fdChildEnv); v != "" {
		os.Exit(fdChildMain(v))
	}
	os.Exit(m.Run())
}

// fdChildMain serves the HTTP and SOCKS5 proxy (allowing 127.0.0.1) under
// the lowered limit. It prints "ready HTTP SOCKS MAXCONNS PIPES", answers
// each "stats" line on stdin with "stats FDS PIPES ACTIVE", and exits when
// stdin closes. Its log goes to stderr.
func fdChildMain(spec string) int {
	limit, err := strconv.Atoi(spec)
	if err == nil {
		err = unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(limit), Max: uint64(limit)})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: limit %q: %v\n", spec, err)
		return 2
	}
	pol, err := policy.New(policy.Config{Allow: []string{"127.0.0.1"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	srv := New(Options{
		Gate:   &egress.Gate{Policy: pol, LocalAddrs: func() []netip.Addr { return nil }},
		Limits: Limits{IdleTimeout: time.Minute},
		Logf:   func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) },
	})
	hl, err1 := net.Listen("tcp4", "127.0.0.1:0")
	sl, err2 := net.Listen("tcp4", "127.0.0.1:0")
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, err1, err2)
		return 2
	}
	go srv.ServeHTTP(hl)
	go srv.ServeSOCKS(sl)
	fmt.Printf("ready %s %s %d %d\n", hl.Addr(), sl.Addr(), srv.Limits().MaxConns, srv.pipes.max)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		open, _ := srv.pipes.stats()
		fmt.Printf("stats %d %d %d\n", openDescriptors(), open, srv.active.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	return 0
}

// fdChild is a running proxy child.
type fdChild struct {
	t          *testing.T
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	out        *bufio.Scanner
	stderr     *syncBuffer
	httpAddr   string
	socksAddr  string
	maxConns   int
	maxPipes   int
	mu         sync.Mutex // one stats exchange at a time
	peakFDs    int
	peakPipes  int
	exitResult chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startFDChild(t *testing.T, limit int) *fdChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fdChildEnv+"="+strconv.Itoa(limit))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &fdChild{t: t, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout), stderr: &syncBuffer{}, exitResult: make(chan error, 1)}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exitResult <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-c.exitResult:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-c.exitResult
		}
	})
	line := c.line()
	if _, err := fmt.Sscanf(line, "ready %s %s %d %d", &c.httpAddr, &c.socksAddr, &c.maxConns, &c.maxPipes); err != nil {
		t.Fatalf("child said %q (%v); stderr:\n%s", line, err, c.stderr)
	}
	return c
}

func (c *fdChild) line() string {
	c.t.Helper()
	got := make(chan string, 1)
	go func() {
		if c.out.Scan() {
			got <- c.out.Text()
		}
		close(got)
	}()
	select {
	case l, ok := <-got:
		if !ok {
			c.t.Fatalf("child ended; stderr:\n%s", c.stderr)
		}
		return l
	case <-time.After(10 * time.Second):
		c.t.Fatalf("child did not answer; stderr:\n%s", c.stderr)
	}
	return ""
}

// stats asks the child for its descriptors, pipes and active connections,
// and keeps the peaks.
func (c *fdChild) stats() (fds, pipes, active int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.stdin, "stats\n"); err != nil {
		c.t.Fatalf("asking the child: %v", err)
	}
	l := c.line()
	if _, err := fmt.Sscanf(l, "stats %d %d %d", &fds, &pipes, &active); err != nil {
		c.t.Fatalf("child said %q: %v", l, err)
	}
	c.peakFDs, c.peakPipes = max(c.peakFDs, fds), max(c.peakPipes, pipes)
	return fds, pipes, active
}

// openTunnel opens a CONNECT tunnel to target through the child. It returns
// the status (200, or the refusal's) and the connection when it is 200.
func (c *fdChild) openTunnel(target string) (int, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", c.httpAddr, 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "CONNECT "+target+" HTTP/1.1\r\n\r\n")
	br := bufio.NewReaderSize(conn, 64)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		conn.Close()
		return 0, nil, err
	}
	if resp.StatusCode != 200 {
		conn.Close()
		return resp.StatusCode, nil, nil
	}
	if br.Buffered() != 0 {
		conn.Close()
		return 0, nil, fmt.Errorf("%d unexpected bytes after the CONNECT answer", br.Buffered())
	}
	conn.SetDeadline(time.Time{})
	return 200, conn, nil
}

// echoAll sends size bytes through every tunnel at once and checks the echo.
func echoAll(t *testing.T, conns []net.Conn, size int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			defer c.SetDeadline(time.Time{})
			msg := bytes.Repeat([]byte{'e'}, size)
			go c.Write(msg)
			got := make([]byte, size)
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("echo through an open tunnel: %v", err)
	}
}

// TestDescriptorBudget runs the proxy in a child process whose descriptor
// limit is 400 (soft and hard): max_conns is lowered to fit and said so;
// clients beyond it get 503 or a SOCKS failure reply while the open
// tunnels go on working; the child never holds more descriptors than its
// limit nor meets EMFILE; splice pipes stay within their bound and are
// given back after the load.
func TestDescriptorBudget(t *testing.T) {
	const limit = 400
	child := startFDChild(t, limit)
	if child.maxConns <= 0 || child.maxConns >= DefaultMaxConns {
		t.Fatalf("max_conns %d under a limit of %d", child.maxConns, limit)
	}
	// The child logs before it says "ready" on stdout, but its stderr is
	// copied here by another goroutine: give the copy a moment.
	want := fmt.Sprintf("lowering max_conns from %d to %d", DefaultMaxConns, child.maxConns)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(child.stderr.String(), want) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(child.stderr.String(), want) {
		t.Errorf("child did not say %q; stderr:\n%s", want, child.stderr)
	}
	target := "127.0.0.1:" + portString(echoServer(t, "tcp4", "127.0.0.1:0"))
	baseFDs, _, _ := child.stats()

	// Fill every slot; the next clients are refused cleanly.
	var tunnels []net.Conn
	t.Cleanup(func() {
		for _, c := range tunnels {
			c.Close()
		}
	})
	for len(tunnels) < child.maxConns {
		code, conn, err := child.openTunnel(target)
		if err != nil || code != 200 {
			t.Fatalf("tunnel %d of %d: status %d, %v; stderr:\n%s", len(tunnels)+1, child.maxConns, code, err, child.stderr)
		}
		tunnels = append(tunnels, conn)
	}
	for i := 0; i < 5; i++ {
		if code, conn, err := child.openTunnel(target); err != nil || code != http.StatusServiceUnavailable {
			if conn != nil {
				conn.Close()
			}
			t.Fatalf("client over the limit: status %d, %v; want 503", code, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := socks5.Dial(ctx, child.socksAddr, "127.0.0.1", 9, nil)
		cancel()
		var re *socks5.ReplyError
		if c != nil {
			c.Close()
		}
		if !errors.As(err, &re) || re.Code != repGeneralFailure {
			t.Fatalf("SOCKS client over the limit: %v; want a general-failure reply", err)
		}
	}

	// The open tunnels all work, moving enough to splice, while the child
	// stays within its limit and its pipe pool.
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				child.stats()
			}
		}
	}()
	echoAll(t, tunnels, 256<<10)
	close(stop)
	<-sampled
	t.Logf("limit %d: max_conns %d, %d descriptors at the start, up to %d under load (%d splice pipes of at most %d)",
		limit, child.maxConns, baseFDs, child.peakFDs, child.peakPipes, child.maxPipes)
	if child.peakFDs > limit {
		t.Errorf("child held %d descriptors, over its limit of %d", child.peakFDs, limit)
	}
	if child.peakPipes == 0 || child.peakPipes > child.maxPipes {
		t.Errorf("child had up to %d splice pipes open, want 1..%d", child.peakPipes, child.maxPipes)
	}

	// Closing half frees slots for new clients; the rest keep working.
	half := len(tunnels) / 2
	for _, c := range tunnels[:half] {
		c.Close()
	}
	tunnels = tunnels[half:]
	waitFor(t, "closed tunnels to free their slots", func() bool {
		_, _, active := child.stats()
		return active == len(tunnels)
	})
	code, conn, err := child.openTunnel(target)
	if err != nil || code != 200 {
		t.Fatalf("after freeing slots: status %d, %v", code, err)
	}
	tunnels = append(tunnels, conn)
	echoAll(t, tunnels, 1<<10)

	// After the load everything is given back.
	for _, c := range tunnels {
		c.Close()
	}
	tunnels = nil
	waitFor(t, "descriptors and pipes to be given back", func() bool {
		fds, pipes, active := child.stats()
		return active == 0 && pipes == 0 && fds <= baseFDs
	})
	if strings.Contains(child.stderr.String(), "too many open files") {
		t.Errorf("child met EMFILE; stderr:\n%s", child.stderr)
	}
}

// TestDescriptorBudgetBurst: many more clients at once than there are slots
// each get a tunnel or a clean 503, never a reset, and the child never
// goes over its limit.
func TestDescriptorBudgetBurst(t *testing.T) {
	const limit = 400
	child := startFDChild(t, limit)
	target := "127.0.0.1:" + portString(echoServer(t, "tcp4", "127.0.0.1:0"))
	clients := 3 * child.maxConns
	var (
		mu           sync.Mutex
		ok, busy     int
		firstFailure error
		conns        []net.Conn
		wg           sync.WaitGroup
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, conn, err := child.openTunnel(target)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && code == 200:
				ok++
				conns = append(conns, conn)
			case err == nil && code == http.StatusServiceUnavailable:
				busy++
			case firstFailure == nil:
				firstFailure = fmt.Errorf("status %d, %v", code, err)
			}
		}()
	}
	wg.Wait()
	fds, _, _ := child.stats()
	t.Logf("%d clients at once: %d tunnels, %d refused with 503; child holds %d descriptors (limit %d)", clients, ok, busy, fds, limit)
	if firstFailure != nil || ok+busy != clients {
		t.Errorf("%d clients: %d tunnels, %d refused with 503, others failed (first: %v)", clients, ok, busy, firstFailure)
	}
	if ok == 0 || ok > child.maxConns {
		t.Errorf("%d tunnels opened with %d slots", ok, child.maxConns)
	}
	if fds > limit {
		t.Errorf("child holds %d descriptors, over its limit %d", fds, limit)
	}
	echoAll(t, conns, 64)
	if strings.Contains(child.stderr.String(), "too many open files") {
		t.Errorf("child met EMFILE; stderr:\n%s", child.stderr)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
