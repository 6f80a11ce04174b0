//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSignalForwarding(t *testing.T) {
	spec := helperSpec("waitsig")
	spec.Network = NetworkNone
	checkSIGTERMReachesCMD(t, spec)
}

// checkSIGTERMReachesCMD runs spec (the helper "waitsig") and sends SIGTERM
// to the process running Run (this test process) once CMD is ready: CMD
// must get it and exit 42.
func checkSIGTERMReachesCMD(t *testing.T, spec Spec) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	spec.Stdout = pw
	done := make(chan outcome, 1)
	go func() {
		o := sandboxRun(t, spec)
		pw.Close()
		done <- o
	}()
	r := bufio.NewReader(pr)
	line, err := r.ReadString('\n')
	if err != nil || line != "ready\n" {
		o := <-done
		t.Fatalf("helper did not get ready: %q %v (%+v)", line, err, o)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	o := <-done
	if o.err != nil || o.res.ExitCode != 42 || !strings.Contains(string(rest), "got terminated") {
		t.Fatalf("SIGTERM: result %+v err %v output %q", o.res, o.err, rest)
	}
}

func TestNothingOutlivesTheCommand(t *testing.T) {
	token := fmt.Sprintf("sandgate-leftover-%d-%d", os.Getpid(), time.Now().UnixNano())
	defer func() {
		for _, pid := range findProcsWith(token) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	// CMD starts a background process (which ignores SIGHUP) and exits.
	spec := Spec{
		Args:    []string{"sh", "-c", `trap "" HUP; "$0" "$1" & echo started`, testBinary(), token},
		Env:     append(os.Environ(), helperEnv+"=hang"),
		Network: NetworkNone,
	}
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 || o.stdout != "started\n" {
		t.Fatalf("Run: %+v %v %q %q", o.res, o.err, o.stdout, o.stderr)
	}
	if pids := findProcsWith(token); len(pids) != 0 {
		t.Fatalf("processes started in the sandbox outlived it: %v", pids)
	}
}

func TestContextCancelKillsSandbox(t *testing.T) {
	token := fmt.Sprintf("sandgate-cancel-%d-%d", os.Getpid(), time.Now().UnixNano())
	defer func() {
		for _, pid := range findProcsWith(token) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	spec := helperSpec("hang", token)
	spec.Network = NetworkNone
	spec.Executable = testBinary()
	spec.Stdin = strings.NewReader("")
	spec.Stdout, spec.Stderr = io.Discard, io.Discard
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, spec)
	mustHaveSandbox(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v after cancellation", d)
	}
	if pids := findProcsWith(token); len(pids) != 0 {
		t.Fatalf("sandbox survived cancellation: %v", pids)
	}
}

func TestPTY(t *testing.T) {
	// The test's own pty stands in for the user's terminal.
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	if err := unix.IoctlSetWinsize(fileFD(slave), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 77}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(fileFD(slave), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out bytes.Buffer
	lines := make(chan string, 100)
	go func() {
		r := bufio.NewReader(master)
		for {
			s, err := r.ReadString('\n')
			mu.Lock()
			out.WriteString(s)
			mu.Unlock()
			if s != "" {
				lines <- strings.TrimRight(s, "\r\n")
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	waitFor := func(prefix string) string {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("terminal closed while waiting for %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("no %q on the terminal; got %q", prefix, out.String())
			}
		}
	}
	spec := helperSpec("tty")
	spec.Network = NetworkNone
	spec.Stdin, spec.Stdout, spec.Stderr = slave, slave, slave
	done := make(chan outcome, 1)
	go func() {
		spec.Executable = testBinary()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		res, err := Run(ctx, spec)
		done <- outcome{res: res, err: err}
	}()
	ttyLine := waitFor("tty ")
	if !strings.HasPrefix(ttyLine, "tty /dev/pts/") {
		t.Errorf("command's stdin is not a pty: %q", ttyLine)
	}
	if l := waitFor("size "); l != "size 33 77" {
		t.Errorf("window size %q, want 33 77", l)
	}
	if l := waitFor("session-leader "); l != "session-leader true foreground true <nil>" {
		t.Errorf("session: %q", l)
	}
	waitFor("ready")
	// The pty in the sandbox is in canonical mode with echo: a line typed
	// on the user's terminal reaches the command.
	master.Write([]byte("typed line\r"))
	if l := waitFor("read "); l != `read "typed line"` {
		t.Errorf("input: %q", l)
	}
	// Resizing the user's terminal and sending SIGWINCH to sandgate reaches
	// the command as a resize of its own terminal.
	unix.IoctlSetWinsize(fileFD(slave), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100})
	syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	if l := waitFor("winch "); l != "winch 40 100" {
		t.Errorf("after resize: %q", l)
	}
	// Ctrl-C typed on the terminal is a SIGINT for the command (not sandgate).
	master.Write([]byte{3})
	if l := waitFor("^C"); l != "^Cgot interrupt" { // the pty echoes ^C
		t.Errorf("after Ctrl-C: %q", l)
	}
	var o outcome
	select {
	case o = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	mustHaveSandbox(t, o.err)
	if o.err != nil || o.res.ExitCode != 5 {
		t.Fatalf("Run: %+v %v", o.res, o.err)
	}
	after, err := unix.IoctlGetTermios(fileFD(slave), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("terminal modes not restored: before %+v after %+v", before, after)
	}
}
