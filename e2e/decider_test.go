//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// question is what a decider receives (docs/decider.md).
type question struct {
	Run      string `json:"run"`
	Protocol string `json:"protocol"`
	Host     string `json:"host"`
	Port     uint16 `json:"port"`
	Method   string `json:"method"`
	Path     string `json:"path"`
}

// testDecider is a decider service on a unix socket: answers maps a host to
// the answer's JSON; delay holds every answer that long.
type testDecider struct {
	url   string
	mu    sync.Mutex
	asked []question
}

func startDecider(t *testing.T, answers map[string]string, delay time.Duration) *testDecider {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix+"dec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	d := &testDecider{url: "unix:" + path}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q question
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err := json.Unmarshal(body, &q); err != nil {
			t.Errorf("decider: question %q: %v", body, err)
			http.Error(w, "bad question", http.StatusBadRequest)
			return
		}
		d.mu.Lock()
		d.asked = append(d.asked, q)
		d.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		ans, ok := answers[q.Host]
		if !ok {
			ans = `{"decision":"deny"}`
		}
		_, _ = io.WriteString(w, ans)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return d
}

// count returns how many questions named host:port, and the questions.
func (d *testDecider) count(host string, port uint16) (int, []question) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, q := range d.asked {
		if q.Host == host && q.Port == port {
			n++
		}
	}
	return n, append([]question(nil), d.asked...)
}

// reasonOf returns the reasons of the audit events for host:port.
func reasonsOf(evs []auditEvent, host string, port uint16) []string {
	var rs []string
	for _, e := range evs {
		if e.Host == host && e.Port == port {
			rs = append(rs, e.Decision+":"+e.Reason)
		}
	}
	return rs
}

// TestRunDecider: a decider on a unix socket allows remote.test for the
// run (asked once for two requests), remote4.test once (asked for each
// request), and denies evil.test; a name on the deny list is never asked;
// each question names the run by its id (the one `sandgate ctl` uses).
func TestRunDecider(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	d := startDecider(t, map[string]string{
		"remote.test":  `{"decision":"allow","scope":"run"}`,
		"remote4.test": `{"decision":"allow","scope":"once"}`,
		"evil.test":    `{"decision":"deny"}`,
	}, 0)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	runID := prefix + "dec-" + strconv.Itoa(os.Getpid())
	flags := []string{"--backend", "netns", "--decider", d.url, "--audit", auditFile,
		"--allow", "remote6.test", "--deny", "denied.test", "--control-id", runID}
	cs := []chk{
		succeeds("http", "http://remote.test/").with("sgtest-remote proto=http host=remote.test"),
		succeeds("http", "http://remote.test/").with("sgtest-remote proto=http"),
		succeeds("http", "http://remote4.test/").with("local=" + remoteV4 + ":80"),
		succeeds("http", "http://remote4.test/").with("local=" + remoteV4 + ":80"),
		succeeds("connect", "remote.test:22").with("SSH-2.0-sgtest-banner"), // another port: asked anew
		fails("http", "http://evil.test/").with("403"),
		fails("socks5", "evil.test:22").with("socks reply 2"),
		fails("http", "http://denied.test/").with("403"),
		succeeds("http", "http://remote6.test/"), // on the allow list: never asked
	}
	o := w.runSandgate(t, flags, probeArgv(cs)...)
	expectProbes(t, o, cs)
	for _, c := range []struct {
		host string
		port uint16
		n    int
	}{{"remote.test", 80, 1}, {"remote4.test", 80, 2}, {"remote.test", 22, 1}, {"evil.test", 80, 1}, {"evil.test", 22, 1}, {"denied.test", 80, 0}, {"remote6.test", 80, 0}} {
		if n, all := d.count(c.host, c.port); n != c.n {
			t.Errorf("%s:%d was asked %d times, want %d; questions %+v", c.host, c.port, n, c.n, all)
		}
	}
	_, all := d.count("", 0)
	if len(all) == 0 {
		t.Fatal("the decider was never asked")
	}
	for _, q := range all {
		if q.Run != runID {
			t.Errorf("question %+v: want the run's id %q (its --control-id) in each", q, runID)
		}
		switch {
		case q.Port == 22 && q.Host == "evil.test":
			if q.Protocol != "socks5" || q.Method != "" {
				t.Errorf("SOCKS5 question %+v", q)
			}
		case q.Port == 22:
			if q.Protocol != "connect" || q.Method != "" || q.Path != "" {
				t.Errorf("CONNECT question %+v", q)
			}
		default:
			if q.Protocol != "http" || q.Method != "GET" || q.Path != "/" {
				t.Errorf("HTTP question %+v", q)
			}
		}
	}
	evs := readAudit(t, auditFile)
	if rs := strings.Join(reasonsOf(evs, "evil.test", 80), " "); rs != "deny:decider-denied" {
		t.Errorf("audit for evil.test:80: %s", rs)
	}
	if rs := strings.Join(reasonsOf(evs, "denied.test", 80), " "); rs != "deny:denied" {
		t.Errorf("audit for denied.test:80: %s", rs)
	}
	if rs := reasonsOf(evs, "remote.test", 80); len(rs) != 2 || !strings.HasPrefix(rs[0], "allow:") || !strings.HasPrefix(rs[1], "allow:") {
		t.Errorf("audit for remote.test:80: %v", rs)
	}
	if !strings.Contains(o.stderr, "evil.test:80 (denied by the decider)") {
		t.Errorf("the exit summary does not name the decider's refusal: %s", o.stderr)
	}
}

// TestRunDeciderTransparent: a program that ignores the proxy variables
// gets an address for a name the decider is asked about, and its
// connection is decided by the decider (transparent path).
func TestRunDeciderTransparent(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	d := startDecider(t, map[string]string{"remote4.test": `{"decision":"allow","scope":"once"}`}, 0)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{"--backend", "netns", "--decider", d.url, "--audit", auditFile}
	o := w.runSandgate(t, flags, "/bin/sh", "-c",
		"curl -sS --max-time 20 --noproxy '*' http://remote4.test/ && ! curl -sS --max-time 20 --noproxy '*' http://evil.test/")
	if o.code != 0 || !strings.Contains(o.stdout, "sgtest-remote") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", o.code, o.stdout, o.stderr)
	}
	// curl may try a second address (IPv6, then IPv4) of a refused name:
	// each connection is asked about.
	_, all := d.count("", 0)
	hosts := map[string]int{}
	for _, q := range all {
		if q.Protocol != "transparent" || q.Port != 80 {
			t.Errorf("question %+v: want protocol transparent, port 80", q)
		}
		hosts[q.Host]++
	}
	if hosts["remote4.test"] < 1 || hosts["evil.test"] < 1 || len(hosts) != 2 {
		t.Errorf("questions %+v: want remote4.test and evil.test", all)
	}
	evs := readAudit(t, auditFile)
	rs := reasonsOf(evs, "evil.test", 80)
	if len(rs) == 0 {
		t.Errorf("no audit event for evil.test:80")
	}
	for _, r := range rs {
		if r != "deny:decider-denied" {
			t.Errorf("audit for evil.test:80: %v", rs)
		}
	}
}

// TestRunDeciderTimeout: a decider that does not answer in time is a deny,
// reported on stderr as it happens and in the audit as decider-failed.
func TestRunDeciderTimeout(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	d := startDecider(t, map[string]string{"remote.test": `{"decision":"allow","scope":"run"}`}, 10*time.Second)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{"--backend", "netns", "--decider", d.url, "--decider-timeout", "300ms", "--audit", auditFile}
	cs := []chk{fails("http", "http://remote.test/").with("403")}
	t0 := time.Now()
	o := w.runSandgate(t, flags, probeArgv(cs)...)
	expectProbes(t, o, cs)
	if el := time.Since(t0); el > 8*time.Second {
		t.Errorf("the run took %v: the timeout did not bound the question", el)
	}
	if n, _ := d.count("remote.test", 80); n != 1 {
		t.Errorf("asked %d times, want 1", n)
	}
	if rs := strings.Join(reasonsOf(readAudit(t, auditFile), "remote.test", 80), " "); rs != "deny:decider-failed" {
		t.Errorf("audit for remote.test:80: %s", rs)
	}
	if !strings.Contains(o.stderr, "sandgate: remote.test:80 is refused: the decider did not answer within 300ms (decider-failed") {
		t.Errorf("stderr does not report the failure: %s", o.stderr)
	}
}

// TestRunDeciderFailureNotShownToCMD: the error of a failing decider (here
// a malformed answer naming a key of the harness's own) is in the audit and
// on sandgate's stderr, but the 403 CMD receives says only that the decider
// failed: CMD learns nothing of the harness from it.
func TestRunDeciderFailureNotShownToCMD(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	const marker = "harness_internal_marker"
	d := startDecider(t, map[string]string{"remote.test": `{"decision":"allow","` + marker + `":"x"}`}, 0)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{"--backend", "netns", "--decider", d.url, "--audit", auditFile}
	o := w.runSandgate(t, flags, "/bin/sh", "-c", "curl -sS -i --max-time 20 http://remote.test/; true")
	if !strings.Contains(o.stdout, " 403 ") || !strings.Contains(o.stdout, "remote.test:80 is refused: the decider failed (see sandgate's log)") {
		t.Fatalf("CMD did not get the generic refusal\nexit %d\nstdout %s\nstderr %s", o.code, o.stdout, o.stderr)
	}
	if strings.Contains(o.stdout, marker) || strings.Contains(o.stdout, "malformed") {
		t.Errorf("the decider's error reached CMD:\n%s", o.stdout)
	}
	raw, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(raw), "\n") {
		found = found || strings.Contains(line, `"decider-failed"`) && strings.Contains(line, marker)
	}
	if !found {
		t.Errorf("no decider-failed audit event with the decider's error:\n%s", raw)
	}
	if !strings.Contains(o.stderr, "malformed answer: unknown field") || !strings.Contains(o.stderr, marker) {
		t.Errorf("sandgate's stderr does not report the decider's error:\n%s", o.stderr)
	}
}

// TestRunAsk: --ask prompts on sandgate's terminal (here a pty the test
// holds, CMD having its own): "r" allows remote.test for the run (its
// second request is not asked), "d" denies evil.test, and the answer keys
// never reach CMD, which reads the next line typed intact.
func TestRunAsk(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{"--backend", "netns", "--ask", "--audit", auditFile}
	script := probeBin + " http http://remote.test/ + http http://remote.test/ + http http://evil.test/; echo READ-NOW; read x; echo \"GOT[$x]\""
	p, out := w.startPTYFlags(t, flags, &pty.Winsize{Rows: 24, Cols: 200}, "/bin/sh", "-c", script)
	out.waitFor(t, "CMD wants remote.test:80 (GET /) by http. Allow [o]nce, for this [r]un, [d]eny, or [n]ever (deny for this run)? (deny in 30s)", 20*time.Second)
	write(t, p.stdin, "r")
	out.waitFor(t, "remote.test:80 allowed for the rest of the run", 10*time.Second)
	out.waitFor(t, "CMD wants evil.test:80 (GET /) by http.", 20*time.Second)
	write(t, p.stdin, "d")
	out.waitFor(t, "READ-NOW", 20*time.Second)
	write(t, p.stdin, "hello\r")
	out.waitFor(t, "GOT[hello]", 10*time.Second)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit status %d; output:\n%s", code, out.String())
	}
	if n := strings.Count(out.String(), "Allow [o]nce"); n != 2 {
		t.Errorf("%d prompts, want 2; output:\n%s", n, out.String())
	}
	evs := readAudit(t, auditFile)
	if rs := strings.Join(reasonsOf(evs, "evil.test", 80), " "); rs != "deny:decider-denied" {
		t.Errorf("audit for evil.test:80: %s", rs)
	}
	if rs := reasonsOf(evs, "remote.test", 80); len(rs) != 2 || !strings.HasPrefix(rs[1], "allow:") {
		t.Errorf("audit for remote.test:80: %v", rs)
	}
}

// TestRunAskWithoutTerminal: --ask with no controlling terminal is exit 2
// naming the alternatives, before anything runs.
func TestRunAskWithoutTerminal(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	o := w.runSandgate(t, []string{"--ask"}, "/bin/true")
	if o.code != 2 || !strings.Contains(o.stderr, "--ask needs a terminal") || !strings.Contains(o.stderr, "--decider URL") {
		t.Errorf("exit %d, stderr %q", o.code, o.stderr)
	}
}

// startWithTerminal starts `sandgate run FLAGS -- CMD` with stdin
// /dev/null and stdout and stderr a new pty that is its controlling
// terminal (so CMD gets no pty of its own). It returns the pty master and
// the output, and waits for sandgate at the end of the test.
func (w *world) startWithTerminal(t *testing.T, flags []string, cmd ...string) (*exec.Cmd, *os.File, *lines) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c := w.hostCmd(ctx, nil, newHome(t, nil), sandgateArgv(flags, cmd...)...)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	c.Stdin = devnull
	// The pty is the controlling terminal through stdout (fd 1).
	master, err := pty.StartWithAttrs(c, &pty.Winsize{Rows: 24, Cols: 200}, &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 1, Pdeathsig: syscall.SIGKILL})
	if err != nil {
		t.Fatal(err)
	}
	out := newLines()
	go func() { _, _ = io.Copy(out, master); out.end() }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		_ = c.Wait()
		master.Close()
		t.Logf("%s\npty output:\n%s", strings.Join(c.Args, " "), out.String())
	})
	return c, master, out
}

// TestRunAskCanonicalTerminal: sandgate's stdin is not a terminal (so CMD
// gets no pty of its own) but its controlling terminal is: the question is
// still answered with a single key, without Enter and without echo, and the
// terminal is canonical again afterwards.
func TestRunAskCanonicalTerminal(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	script := probeBin + " http http://remote.test/; stty -a 0<&2 | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo"
	_, master, out := w.startWithTerminal(t, []string{"--backend", "netns", "--ask"}, "/bin/sh", "-c", script)
	out.waitFor(t, "CMD wants remote.test:80 (GET /) by http.", 20*time.Second)
	write(t, master, "o") // no Enter
	out.waitFor(t, "remote.test:80 allowed once", 10*time.Second)
	out.waitFor(t, `"ok":true`, 10*time.Second)
	out.waitFor(t, "echo", 10*time.Second)
	got := out.String()
	if strings.Contains(got, "(deny in 30s) oo") {
		t.Errorf("the key was echoed by the terminal: %q", got)
	}
	if !strings.Contains(got, "\nicanon") || !strings.Contains(got, "\necho") {
		t.Errorf("the terminal is not canonical with echo after the question: %q", got)
	}
}

// TestRunCMDCannotTypeIntoTerminal: with no pty of its own, CMD is still in
// a session of its own, without a controlling terminal: it cannot fake
// input on the user's terminal (TIOCSTI), so it can neither answer
// sandgate's --ask question nor type into the user's shell after the run.
func TestRunCMDCannotTypeIntoTerminal(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed: %v", err)
	}
	script := `
import fcntl, os, termios, threading, time, urllib.request
def inject():
    time.sleep(1)  # while the question is shown
    for name, fd in (("fd1", 1), ("fd2", 2)):
        try:
            fcntl.ioctl(fd, termios.TIOCSTI, b"r")
            print(name, "INJECTED", flush=True)
        except OSError as e:
            print(name, "refused", e.errno, flush=True)
    try:
        os.open("/dev/tty", os.O_RDWR)
        print("devtty OPENED", flush=True)
    except OSError as e:
        print("devtty refused", e.errno, flush=True)
threading.Thread(target=inject).start()
try:
    urllib.request.urlopen("http://remote.test/", timeout=20)
    print("REQUEST ALLOWED", flush=True)
except Exception as e:
    print("REQUEST REFUSED", e, flush=True)
`
	c, _, out := w.startWithTerminal(t, []string{"--backend", "netns", "--ask", "--decider-timeout", "3s"}, py, "-c", script)
	out.waitFor(t, "REQUEST ", 30*time.Second)
	if err := c.Wait(); err != nil {
		t.Errorf("sandgate: %v", err)
	}
	got := out.String()
	for _, want := range []string{"fd1 refused", "fd2 refused", "devtty refused", "refused: no answer within 3s", "REQUEST REFUSED"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(got, "INJECTED") || strings.Contains(got, "OPENED") || strings.Contains(got, "REQUEST ALLOWED") || strings.Contains(got, "allowed for the rest") {
		t.Errorf("CMD reached the user's terminal: %q", got)
	}
}
