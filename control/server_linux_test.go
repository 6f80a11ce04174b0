package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// events is an audit sink for tests.
type events struct {
	mu sync.Mutex
	ev []audit.Event
}

func (e *events) Record(ev audit.Event) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func (e *events) all() []audit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]audit.Event(nil), e.ev...)
}

// logs collects a server's log lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// serve starts a server for live in a fresh directory and stops it at the
// end of the test.
func serve(t *testing.T, live *egress.Live, run string, sink audit.Sink, logf func(string, ...any)) (*Server, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ctl")
	s, err := Listen(Options{Dir: dir, Run: run, Live: live, Command: []string{"sh", "-c", "true"}, Audit: sink, Logf: logf})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v after Close", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after Close")
		}
	})
	return s, dir
}

func newLive(t *testing.T, allow ...string) *egress.Live {
	t.Helper()
	p, err := policy.New(policy.Config{Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	return egress.NewLive(p)
}

func dialRun(t *testing.T, dir, run string) *Client {
	t.Helper()
	c, err := Dial(dir, run)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func do(t *testing.T, c *Client, line string) Response {
	t.Helper()
	req, err := ParseRequest([]byte(line))
	if err != nil {
		t.Fatalf("ParseRequest(%q): %v", line, err)
	}
	r, err := c.Do(req)
	if err != nil {
		t.Fatalf("Do(%q): %v", line, err)
	}
	return r
}

func TestServerChangesLivePolicy(t *testing.T) {
	live := newLive(t, "first.test")
	var cut []uint64
	var mu sync.Mutex
	stop := live.Watch(func(p *policy.Policy, gen uint64) {
		mu.Lock()
		cut = append(cut, gen)
		mu.Unlock()
	})
	defer stop()
	sink := &events{}
	s, dir := serve(t, live, "job-1", sink, nil)
	if s.Run() != "job-1" || s.Path() != filepath.Join(dir, "job-1.sock") {
		t.Errorf("Run %q Path %q", s.Run(), s.Path())
	}
	fi, err := os.Lstat(s.Path())
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %v mode %v: want a socket of mode 0600", err, fi.Mode())
	}
	c := dialRun(t, dir, "job-1")

	r := do(t, c, "show")
	if !r.OK || r.Gen != 0 || r.Run != "job-1" || r.PID != os.Getpid() || strings.Join(r.Allow, ",") != "first.test" || len(r.Deny) != 0 ||
		strings.Join(r.Command, " ") != "sh -c true" {
		t.Errorf("show = %+v", r)
	}
	if r := do(t, c, "allow second.test:443"); !r.OK || r.Gen != 1 {
		t.Errorf("allow = %+v, want ok at gen 1", r)
	}
	if p, _ := live.Current(); !p.CheckTarget(mustTarget(t, "second.test", 443)).Allow {
		t.Errorf("second.test:443 is not allowed after allow")
	}
	if r := do(t, c, "deny first.test"); !r.OK || r.Gen != 2 {
		t.Errorf("deny = %+v, want ok at gen 2", r)
	}
	if p, _ := live.Current(); p.CheckTarget(mustTarget(t, "first.test", 443)).Allow {
		t.Errorf("first.test is still allowed after deny")
	}
	r = do(t, c, "allow http://x.test/")
	if r.OK || r.Kind != KindEntry || r.Gen != 2 || !strings.Contains(r.Error, "invalid allow entry") {
		t.Errorf("a malformed entry = %+v, want refused (kind entry) at gen 2", r)
	}
	r = do(t, c, "show")
	if r.Gen != 2 || strings.Join(r.Allow, ",") != "first.test,second.test:443" || strings.Join(r.Deny, ",") != "first.test" {
		t.Errorf("show after changes = %+v", r)
	}
	mu.Lock()
	if len(cut) != 2 || cut[0] != 1 || cut[1] != 2 {
		t.Errorf("watchers saw generations %v, want [1 2]", cut)
	}
	mu.Unlock()

	ev := sink.all()
	if len(ev) != 2 {
		t.Fatalf("audit events %+v, want two updates", ev)
	}
	want := []struct {
		host, reason string
		gen          uint64
	}{{"second.test:443", ReasonAllowAdded, 1}, {"first.test", ReasonDenyAdded, 2}}
	for i, w := range want {
		e := ev[i]
		if e.Proto != ProtoControl || e.Decision != DecisionUpdate || e.Host != w.host || e.Reason != w.reason || e.Gen != w.gen {
			t.Errorf("event %d = %+v, want %s %s gen %d", i, e, w.host, w.reason, w.gen)
		}
	}
	// The refusal summary does not count updates.
	sum := audit.NewSummary()
	for _, e := range ev {
		sum.Record(e)
	}
	if sum.Total() != 0 {
		t.Errorf("the refusal summary counted %d policy updates", sum.Total())
	}
}

func mustTarget(t *testing.T, host string, port uint16) policy.Target {
	t.Helper()
	tg, err := policy.ParseTarget(host, port)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestServerRefusesMalformedLines(t *testing.T) {
	live := newLive(t)
	_, dir := serve(t, live, "r", nil, nil)
	path := filepath.Join(dir, "r.sock")
	raw := func(send string) string {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(send)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		return string(buf[:n])
	}
	cases := []struct{ send, want string }{
		{"reload\n", `"kind":"request"`},
		{"allow\n", `allow needs an entry`},
		{"\n", `empty request`},
		{strings.Repeat("a", MaxLine+10) + "\n", `longer than 4096`},
		{"show\nshow\n", `"ok":true`},
	}
	for _, c := range cases {
		if got := raw(c.send); !strings.Contains(got, c.want) {
			t.Errorf("sending %.20q: got %q, want %q", c.send, got, c.want)
		}
	}
	if _, gen := live.Current(); gen != 0 {
		t.Errorf("malformed lines changed the policy to gen %d", gen)
	}
}

func TestListenRefusesUnsafeDirectories(t *testing.T) {
	live := newLive(t)
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(base, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ dir, want string }{
		{open, "has mode 0755"},
		{link, "not a directory"},
		{file, "creating the control socket directory"},
		{filepath.Join(base, strings.Repeat("d", 100)), "longer than unix sockets allow"},
	}
	for _, c := range cases {
		s, err := Listen(Options{Dir: c.dir, Run: "x", Live: live})
		if err == nil {
			s.Close()
			t.Errorf("Listen in %s succeeded", c.dir)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Listen in %s: %v; want %q", c.dir, err, c.want)
		}
	}
	if _, err := Listen(Options{Dir: base, Run: "../x", Live: live}); err == nil {
		t.Errorf("Listen took the run id ../x")
	}
	if _, err := Listen(Options{Dir: base, Run: "x"}); err == nil {
		t.Errorf("Listen took no live policy")
	}
}

func TestRunIDsInUseAndStale(t *testing.T) {
	live := newLive(t)
	s, dir := serve(t, live, "busy", nil, nil)
	if _, err := Listen(Options{Dir: dir, Run: "busy", Live: live}); !errors.Is(err, ErrRunInUse) || !strings.Contains(err.Error(), `run id "busy" is in use by a running sandbox`) {
		t.Errorf("a second Listen of busy: %v, want in use", err)
	}
	// A socket left by a run that died: nobody listens on it.
	stale := filepath.Join(dir, "dead.sock")
	makeStaleSocket(t, stale)
	ids, err := List(dir)
	if err != nil || strings.Join(ids, ",") != "busy" {
		t.Errorf("List = %v, %v; want [busy]", ids, err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("List left the stale socket: %v", err)
	}
	makeStaleSocket(t, stale)
	s2, err := Listen(Options{Dir: dir, Run: "dead", Live: live})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	s2.Close()

	_, err = Dial(dir, "nosuch")
	var ue *UnknownRunError
	if !errors.As(err, &ue) || ue.Run != "nosuch" || strings.Join(ue.Known, ",") != "busy" || !strings.Contains(err.Error(), "running: busy") {
		t.Errorf("Dial of an unknown run: %v", err)
	}
	if ids, err := List(filepath.Join(dir, "missing")); err != nil || len(ids) != 0 {
		t.Errorf("List of a missing directory = %v, %v", ids, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Lstat(s.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the socket: %v", err)
	}
	_, err = Dial(dir, "busy")
	if !errors.As(err, &ue) || len(ue.Known) != 0 || !strings.Contains(err.Error(), "none has a control socket") {
		t.Errorf("Dial after Close: %v", err)
	}
}

// makeStaleSocket leaves a bound socket file at path that nobody listens on.
func makeStaleSocket(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
}

// requireRoot skips a test that needs root, or fails it when
// SANDGATE_REQUIRE_PRIVILEGED=1 says privileged tests must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal("SANDGATE_REQUIRE_PRIVILEGED=1 but the test is not running as root")
	}
	t.Skip("needs root")
}

// TestServerRefusesOtherUIDs connects from a thread running as uid 65534 to
// a socket made reachable on purpose (the directory and socket opened to
// everyone): the peer credentials alone must refuse it.
func TestServerRefusesOtherUIDs(t *testing.T) {
	requireRoot(t)
	live := newLive(t)
	l := &logs{}
	s, dir := serve(t, live, "mine", nil, l.logf)
	for _, p := range []string{filepath.Dir(filepath.Dir(dir)), filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(s.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	answer, err := connectAs(65534, s.Path(), "allow evil.test\n")
	if err != nil {
		t.Fatalf("connecting as uid 65534: %v", err)
	}
	if !strings.Contains(answer, `"ok":false`) || !strings.Contains(answer, "uid 65534 may not control run mine") {
		t.Errorf("uid 65534 got %q, want a refusal", answer)
	}
	if _, gen := live.Current(); gen != 0 {
		t.Errorf("uid 65534 changed the policy (gen %d)", gen)
	}
	l.mu.Lock()
	logged := strings.Join(l.lines, "\n")
	l.mu.Unlock()
	if !strings.Contains(logged, "refused a connection from uid") {
		t.Errorf("the refusal was not logged: %q", logged)
	}
	// Root, and the caller's own uid, are served.
	c := dialRun(t, dir, "mine")
	if r := do(t, c, "show"); !r.OK {
		t.Errorf("root's show = %+v", r)
	}
}

// connectAs connects to path from a thread of its own whose uids are all
// uid, sends send and returns what comes back. The thread is never given
// back to the runtime (it ends with its goroutine), so the process's other
// threads keep their credentials.
func connectAs(uid int, path, send string) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			ch <- result{err: e}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer unix.Close(fd)
		tv := unix.Timeval{Sec: 5}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			ch <- result{err: err}
			return
		}
		// The server may refuse before reading: a failed send is fine,
		// its answer is still there to read.
		_ = unix.Sendto(fd, []byte(send), unix.MSG_NOSIGNAL, nil)
		buf := make([]byte, 4096)
		n, err := unix.Read(fd, buf)
		if n < 0 {
			n = 0
		}
		ch <- result{s: string(buf[:n]), err: err}
	}()
	r := <-ch
	return r.s, r.err
}
