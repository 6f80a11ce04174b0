//go:build linux

package e2e

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestRunPTYRefusesTIOCSTI: CMD on its own pty (sandgate's stdin is a
// terminal) cannot fake input with TIOCSTI, not even on the pty it holds
// as its controlling terminal (the seccomp filter refuses it, and
// TIOCLINUX, with EPERM), while the ioctls a program uses on its own
// terminal (window size, modes) work.
func TestRunPTYRefusesTIOCSTI(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed: %v", err)
	}
	script := `
import fcntl, os, struct, termios
def try_ioctl(name, fd, req, arg):
    try:
        fcntl.ioctl(fd, req, arg)
        print(name, "ALLOWED", flush=True)
    except OSError as e:
        print(name, "errno", e.errno, flush=True)
print("tty", os.ttyname(0), flush=True)
try_ioctl("tiocsti-stdin", 0, termios.TIOCSTI, b"r")
tty = os.open("/dev/tty", os.O_RDWR)
try_ioctl("tiocsti-devtty", tty, termios.TIOCSTI, b"r")
try_ioctl("tioclinux", 0, 0x541C, b"\x06")
rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
print("winsize %dx%d" % (rows, cols), flush=True)
attrs = termios.tcgetattr(0)
attrs[3] &= ~termios.ECHO
termios.tcsetattr(0, termios.TCSANOW, attrs)
print("tcsetattr ok", flush=True)
print("END", flush=True)
`
	p, out := w.startPTY(t, &pty.Winsize{Rows: 31, Cols: 101}, py, "-c", script)
	out.waitFor(t, "END", 30*time.Second)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	got := out.String()
	for _, want := range []string{"tty /dev/pts/", "tiocsti-stdin errno 1", "tiocsti-devtty errno 1", "tioclinux errno 1", "winsize 31x101", "tcsetattr ok"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ALLOWED") {
		t.Errorf("a terminal injection ioctl went through:\n%s", got)
	}
}

// TestRunAskNeverWithControl: --ask with --control. A client retrying in a
// loop is asked once: "n" (never) refuses the destination for the rest of
// the run, so its retries are refused without a question; then
// `sandgate ctl RUN allow` (the run's id is the one the questions carry)
// lets it through, asked no more.
func TestRunAskNeverWithControl(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	home := newHome(t, nil)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	const run = "e2e-ask-never"
	flags := []string{"--backend", "netns", "--ask", "--control-id", run, "--audit", auditFile}
	probe := probeBin + " http http://evil.test/"
	script := probe + "; " + probe + "; " + probe + "; echo WAIT-NOW; read x; " + probe + "; echo END"
	p, out := startPTYHome(t, w, home, flags, "/bin/sh", "-c", script)
	out.waitFor(t, "CMD wants evil.test:80 (GET /) by http. Allow [o]nce, for this [r]un, [d]eny, or [n]ever (deny for this run)?", 20*time.Second)
	write(t, p.stdin, "n")
	out.waitFor(t, "evil.test:80 refused for the rest of the run (not asked again)", 10*time.Second)
	out.waitFor(t, "WAIT-NOW", 20*time.Second)
	if n := strings.Count(out.String(), "Allow [o]nce"); n != 1 {
		t.Fatalf("%d questions for a client retrying three times, want 1; output:\n%s", n, out.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := finish(t, w.hostCmd(ctx, nil, home, sandgateBin, "ctl", run, "allow", "evil.test"))
	if o.code != 0 || !strings.Contains(o.stdout, "allow evil.test: in force at generation 1") {
		t.Fatalf("ctl allow: exit %d, %q %q", o.code, o.stdout, o.stderr)
	}
	write(t, p.stdin, "go\r")
	out.waitFor(t, "END", 20*time.Second)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit status %d", code)
	}
	if n := strings.Count(out.String(), "Allow [o]nce"); n != 1 {
		t.Errorf("%d questions, want 1; output:\n%s", n, out.String())
	}
	got := strings.Join(reasonsOf(readAudit(t, auditFile), "evil.test", 80), " ")
	if want := "deny:decider-denied deny:decider-denied deny:decider-denied allow:allowed"; got != want {
		t.Errorf("audit for evil.test:80: %s, want %s", got, want)
	}
}

// startPTYHome starts `sandgate run FLAGS -- CMD` with HOME home (where
// its control socket is, for a `sandgate ctl` with the same HOME) on a new
// pty that is its controlling terminal and stdin; CMD gets a pty of its own.
func startPTYHome(t *testing.T, w *world, home string, flags []string, cmd ...string) (*procHandle, *lines) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c := w.hostCmd(ctx, nil, home, sandgateArgv(flags, cmd...)...)
	master, err := pty.StartWithAttrs(c, &pty.Winsize{Rows: 24, Cols: 200}, &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL})
	if err != nil {
		t.Fatal(err)
	}
	out := newLines()
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, master)
		out.end()
		close(copied)
	}()
	p := &procHandle{pid: c.Process.Pid, stdin: master, done: make(chan struct{})}
	go func() {
		p.err = c.Wait()
		select {
		case <-copied:
		case <-time.After(2 * time.Second):
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-p.done
		master.Close()
		t.Logf("%s\npty output:\n%s", strings.Join(c.Args, " "), out.String())
	})
	return p, out
}
