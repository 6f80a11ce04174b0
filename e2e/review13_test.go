//go:build linux

package e2e

import (
	"os/exec"
	"strings"
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
