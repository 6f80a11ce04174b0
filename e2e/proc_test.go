//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestRunExitCodes checks that `sandgate run` exits with CMD's status,
// 128+N when CMD died of signal N, 126 when CMD is not executable, 127 when
// it does not exist, and 125 when the sandbox cannot be made.
func TestRunExitCodes(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho RAN\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cmd  []string
		want int
	}{
		{"zero", []string{probeBin, "exit", "0"}, 0},
		{"three", []string{probeBin, "exit", "3"}, 3},
		{"shell-exit", []string{"/bin/sh", "-c", "exit 7"}, 7},
		{"sigkill", []string{probeBin, "kill-self", "9"}, 128 + 9},
		{"sigterm", []string{probeBin, "kill-self", "15"}, 128 + 15},
		{"not-executable", []string{notExec}, 126},
		{"directory", []string{dir}, 126},
		{"not-found-path", []string{filepath.Join(dir, "no-such-command")}, 127},
		{"not-found-name", []string{"sgtest-no-such-command"}, 127},
	}
	for _, network := range []string{"none", "proxy"} {
		for _, c := range cases {
			t.Run(network+"-"+c.name, func(t *testing.T) {
				t.Parallel()
				o := w.runSandgate(t, []string{"--network", network}, c.cmd...)
				if o.code != c.want {
					t.Errorf("exit status %d, want %d (stderr %q)", o.code, c.want, o.stderr)
				}
				if strings.Contains(o.stdout, "RAN") {
					t.Errorf("the non-executable file ran")
				}
			})
		}
	}
	// No user namespace can be made (the limit is 0 in the namespace sandgate
	// runs in): sandgate must refuse with 125 and never run CMD.
	for _, backend := range []string{"netns", "auto"} {
		t.Run("no-userns-"+backend, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			script := `echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"`
			argv := append([]string{"unshare", "--user", "--map-root-user", "--", "/bin/sh", "-c", script, "sh"},
				sandgateArgv([]string{"--backend", backend, "--allow", "remote.test"}, "/bin/sh", "-c", "echo RAN")...)
			o := finish(t, w.hostCmd(ctx, nil, newHome(t, nil), argv...))
			if o.code != 125 {
				t.Errorf("exit status %d, want 125", o.code)
			}
			if strings.Contains(o.stdout, "RAN") {
				t.Errorf("CMD ran without the sandbox")
			}
			if !strings.Contains(o.stderr, "sandgate:") {
				t.Errorf("no explanation on stderr: %q", o.stderr)
			}
		})
	}
}

// startSandgate starts `sandgate run FLAGS -- CMD` in the host namespace with
// stdout and stderr collected and stdin a pipe; it is killed at the end of
// the test if still running.
func (w *world) startSandgate(t *testing.T, flags []string, cmd ...string) (*procHandle, *lines, *lines) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c := w.hostCmd(ctx, nil, newHome(t, nil), sandgateArgv(flags, cmd...)...)
	stdout, stderr := newLines(), newLines()
	c.Stdout, c.Stderr = stdout, stderr
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p := &procHandle{pid: c.Process.Pid, stdin: stdin, done: make(chan struct{})}
	go func() {
		p.err = c.Wait()
		stdout.end()
		stderr.end()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-p.done
		t.Logf("%s\n  stdout: %s\n  stderr: %s", strings.Join(c.Args, " "), indent(stdout.String()), indent(stderr.String()))
	})
	return p, stdout, stderr
}

// procHandle is a started process.
type procHandle struct {
	pid   int
	stdin io.WriteCloser
	done  chan struct{}
	err   error
}

// wait waits (at most d) for the process to end and returns its status.
func (p *procHandle) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return exitCode(t, p.err)
	case <-time.After(d):
		t.Fatalf("process %d did not end within %v", p.pid, d)
		return -1
	}
}

// TestRunSignalForwarding checks that SIGHUP, SIGINT, SIGQUIT, SIGWINCH and
// SIGTERM sent to sandgate reach CMD, and that sandgate survives those CMD
// handles, exiting with CMD's status.
func TestRunSignalForwarding(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	p, stdout, stderr := w.startSandgate(t, []string{"--network", "none"}, probeBin, "signals")
	stdout.waitFor(t, "READY", 20*time.Second)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGWINCH, syscall.SIGTERM} {
		if err := syscall.Kill(p.pid, sig); err != nil {
			t.Fatalf("signalling sandgate: %v", err)
		}
		stdout.waitFor(t, "GOT "+sigName(sig), 10*time.Second)
	}
	if code := p.wait(t, 10*time.Second); code != 42 {
		t.Errorf("exit status %d, want 42 (the probe's after SIGTERM); stderr: %s", code, stderr.String())
	}
}

func sigName(s syscall.Signal) string {
	return map[syscall.Signal]string{
		syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGWINCH: "SIGWINCH", syscall.SIGTERM: "SIGTERM",
	}[s]
}

// TestRunSignalKillsCMD checks that a forwarded SIGTERM kills a CMD that does
// not handle it, and sandgate then exits 128+15. CMD is a shell that execs
// the probe: the pid sandgate forwards to must be that of CMD.
func TestRunSignalKillsCMD(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sigName(sig), func(t *testing.T) {
			t.Parallel()
			p, stdout, _ := w.startSandgate(t, []string{"--network", "none"}, "/bin/sh", "-c", "echo READY; exec "+probeBin+" sleep 30")
			stdout.waitFor(t, "READY", 20*time.Second)
			time.Sleep(200 * time.Millisecond) // let the shell exec the probe
			if err := syscall.Kill(p.pid, sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 10*time.Second); code != 128+int(sig) {
				t.Errorf("exit status %d, want %d", code, 128+int(sig))
			}
		})
	}
}

// TestRunReapsSandbox checks that when CMD exits, what it started in the
// sandbox (here a detached process in a session of its own) is gone too.
func TestRunReapsSandbox(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	marker := fmt.Sprintf("%sorphan-%d-%d", prefix, os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		for _, pid := range pidsWithArg(marker) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	o := w.runSandgate(t, []string{"--network", "none"}, probeBin, "spawn", marker)
	if o.code != 0 || !strings.Contains(o.stdout, "SPAWNED") {
		t.Fatalf("spawn failed: exit %d, %s", o.code, o.stdout)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := pidsWithArg(marker)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes started in the sandbox outlived it: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunNoSurvivorsAtExit checks that `sandgate run` exits with CMD's
// status as soon as CMD ends, though CMD left processes running in the
// background, and that none of them is alive by then (checked at once:
// the run ends on the init's report of CMD's end, which comes after the
// init has killed and reaped the rest of the sandbox).
func TestRunNoSurvivorsAtExit(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	for _, network := range []string{"proxy", "none"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			marker := fmt.Sprintf("%sleft-%s-%d-%d", prefix, network, os.Getpid(), time.Now().UnixNano())
			t.Cleanup(func() {
				for _, pid := range pidsWithArg(marker) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			bg := probeBin + " sleep 100 " + marker + " </dev/null >/dev/null 2>&1 &"
			start := time.Now()
			o := w.runSandgate(t, []string{"--network", network}, "/bin/sh", "-c", bg+" "+bg+" echo STARTED; exit 3")
			took := time.Since(start)
			left := pidsWithArg(marker)
			if o.code != 3 || !strings.Contains(o.stdout, "STARTED") {
				t.Fatalf("exit status %d, want 3; stdout %q", o.code, o.stdout)
			}
			if len(left) != 0 {
				t.Errorf("processes CMD left were alive when sandgate exited: %v", left)
			}
			if took > 30*time.Second {
				t.Errorf("sandgate took %v: it waited for what CMD left", took)
			}
		})
	}
}

// pidsWithArg lists the host's processes with arg among their arguments.
func pidsWithArg(arg string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// TestRunTTY checks a terminal session through a pty the test opens: CMD
// sees a terminal of the right size, keys typed reach it, Ctrl-C interrupts
// CMD and not sandgate, and a window size change reaches CMD.
func TestRunTTY(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	t.Run("tty-and-size", func(t *testing.T) {
		t.Parallel()
		p, out := w.startPTY(t, &pty.Winsize{Rows: 33, Cols: 97}, "/bin/sh", "-c", "tty && stty size && "+probeBin+" winsize")
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("exit status %d, want 0; output:\n%s", code, out.String())
		}
		got := out.String()
		if !strings.Contains(got, "/dev/pts/") || strings.Contains(got, "not a tty") {
			t.Errorf("CMD has no terminal:\n%s", got)
		}
		if !strings.Contains(got, "33 97") || !strings.Contains(got, `"33x97"`) {
			t.Errorf("CMD does not see the 33x97 window size:\n%s", got)
		}
	})
	t.Run("keys-ctrl-c-winch", func(t *testing.T) {
		t.Parallel()
		p, out := w.startPTY(t, &pty.Winsize{Rows: 24, Cols: 80}, probeBin, "signals")
		out.waitFor(t, "READY", 20*time.Second)
		write(t, p.stdin, "hello\r")
		out.waitFor(t, "LINE hello", 10*time.Second)
		write(t, p.stdin, "\x03")
		out.waitFor(t, "GOT SIGINT", 10*time.Second)
		if err := pty.Setsize(p.stdin.(*os.File), &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
			t.Fatal(err)
		}
		out.waitFor(t, "GOT SIGWINCH 40x120", 10*time.Second)
		write(t, p.stdin, "exit\r")
		if code := p.wait(t, 10*time.Second); code != 43 {
			t.Errorf("exit status %d, want 43 (the probe's on reading exit); output:\n%s", code, out.String())
		}
	})
}

func write(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
}

// startPTY starts `sandgate run --network none -- CMD` on a new pty of the
// given size, as a session leader with the pty as controlling terminal. The
// returned handle's stdin is the pty master.
func (w *world) startPTY(t *testing.T, size *pty.Winsize, cmd ...string) (*procHandle, *lines) {
	t.Helper()
	return w.startPTYFlags(t, []string{"--network", "none"}, size, cmd...)
}

// startPTYFlags is startPTY with sandgate's flags given.
func (w *world) startPTYFlags(t *testing.T, flags []string, size *pty.Winsize, cmd ...string) (*procHandle, *lines) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c := w.hostCmd(ctx, nil, newHome(t, nil), sandgateArgv(flags, cmd...)...)
	c.Env = append(c.Env, "TERM=xterm")
	master, err := pty.StartWithAttrs(c, size, &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL})
	if err != nil {
		t.Fatal(err)
	}
	out := newLines()
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, master) // ends with EIO when the last slave closes
		out.end()
		close(copied)
	}()
	p := &procHandle{pid: c.Process.Pid, stdin: master, done: make(chan struct{})}
	go func() {
		p.err = c.Wait()
		// Give the copier a moment to drain what CMD wrote last.
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
		t.Logf("pty output:\n%s", out.String())
	})
	return p, out
}
