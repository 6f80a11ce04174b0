//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testUser is an unprivileged account the tests run commands as.
type testUser struct {
	name     string
	uid, gid int
}

// hostCmd makes a command that runs argv in the host network namespace
// (through `ip netns exec`, which also puts the test resolver configuration
// in place), as u when u is not nil. `ip netns exec` and setpriv both exec
// in place, so the command's pid is argv[0]'s. The environment is minimal
// and fixed: no proxy variables of the caller, a private empty HOME.
func (w *world) hostCmd(ctx context.Context, u *testUser, home string, argv ...string) *exec.Cmd {
	args := []string{"netns", "exec", w.hostNS}
	if u != nil {
		args = append(args, "setpriv", "--reuid", strconv.Itoa(u.uid), "--regid", strconv.Itoa(u.gid), "--clear-groups", "--")
	}
	cmd := exec.CommandContext(ctx, "ip", append(args, argv...)...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"LANG=C",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// newHome makes an empty directory usable as HOME by u (or root).
func newHome(t *testing.T, u *testUser) string {
	t.Helper()
	home := t.TempDir()
	if u != nil {
		chownForUser(t, home, u)
	}
	return home
}

// chownForUser makes a temp dir (and the dirs above it that the test made)
// reachable and writable for u.
func chownForUser(t *testing.T, dir string, u *testUser) {
	t.Helper()
	if err := os.Chown(dir, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is private to root; let u traverse it.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
}

// outcome is what a finished command did.
type outcome struct {
	code           int // exit status; 128+N when killed by signal N
	stdout, stderr string
	probes         []probeResult
}

// probeResult is one "PROBE {...}" line of the probe.
type probeResult struct {
	Check  string   `json:"check"`
	Args   []string `json:"args"`
	OK     bool     `json:"ok"`
	Detail string   `json:"detail"`
}

// exitCode turns the error of Wait into an exit status.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("command did not run: %v", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// finish runs cmd to its end (at most 60 s) and collects its outcome.
func finish(t *testing.T, cmd *exec.Cmd) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	o := outcome{code: exitCode(t, err), stdout: stdout.String(), stderr: stderr.String()}
	o.probes = parseProbes(t, o.stdout)
	t.Logf("%s\n  -> exit %d in %v\n  stdout: %s\n  stderr: %s", strings.Join(cmd.Args, " "), o.code,
		time.Since(start).Round(time.Millisecond), indent(o.stdout), indent(o.stderr))
	return o
}

func indent(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n          ")
}

func parseProbes(t *testing.T, stdout string) []probeResult {
	t.Helper()
	var rs []probeResult
	for _, line := range strings.Split(stdout, "\n") {
		js, ok := strings.CutPrefix(line, "PROBE ")
		if !ok {
			continue
		}
		var r probeResult
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatalf("bad probe line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// chk is one probe check and the outcome the test expects of it.
type chk struct {
	args []string // check name and arguments
	ok   bool     // whether the operation must succeed
	want []string // substrings the detail must contain
}

// succeeds and fails make checks expected to succeed or fail.
func succeeds(args ...string) chk { return chk{args: args, ok: true} }
func fails(args ...string) chk    { return chk{args: args} }

// with adds substrings the detail must contain.
func (c chk) with(s ...string) chk {
	c.want = append(append([]string(nil), c.want...), s...)
	return c
}

// probeArgv is the probe command line running all checks.
func probeArgv(cs []chk) []string {
	argv := []string{probeBin}
	for i, c := range cs {
		if i > 0 {
			argv = append(argv, "+")
		}
		argv = append(argv, c.args...)
	}
	return argv
}

// expectProbes compares the probe's results with the checks, in order, and
// the exit status with the probe's own for those results (0 when every check
// succeeded, 10 otherwise), which sandgate must pass through.
func expectProbes(t *testing.T, o outcome, cs []chk) {
	t.Helper()
	if len(o.probes) != len(cs) {
		t.Errorf("probe reported %d results for %d checks (exit %d)", len(o.probes), len(cs), o.code)
	}
	allOK := true
	for i, c := range cs {
		allOK = allOK && c.ok
		if i >= len(o.probes) {
			break
		}
		r := o.probes[i]
		name := strings.Join(c.args, " ")
		if r.Check != c.args[0] {
			t.Errorf("result %d is for %q, want %q", i, r.Check, name)
			continue
		}
		if r.OK != c.ok {
			verb := "failed"
			if r.OK {
				verb = "SUCCEEDED"
			}
			t.Errorf("%s: %s, want ok=%v: %s", name, verb, c.ok, r.Detail)
			continue
		}
		for _, s := range c.want {
			if !strings.Contains(r.Detail, s) {
				t.Errorf("%s: detail %q lacks %q", name, r.Detail, s)
			}
		}
	}
	want := 0
	if !allOK {
		want = 10
	}
	if o.code != want {
		t.Errorf("exit status %d, want %d (the probe's own)", o.code, want)
	}
}

// lines collects a stream and lets a test wait for text in it.
type lines struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ch    chan struct{} // closed and replaced on every write and at the end
	ended bool          // the writer is gone: nothing more will come
}

func newLines() *lines { return &lines{ch: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.ch)
	l.ch = make(chan struct{})
	return len(p), nil
}

// end marks the stream finished, so that waiting for more fails at once.
func (l *lines) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = true
	close(l.ch)
	l.ch = make(chan struct{})
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits until the stream contains s, failing the test after d.
func (l *lines) waitFor(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		l.mu.Lock()
		has := strings.Contains(l.buf.String(), s)
		ch, ended := l.ch, l.ended
		l.mu.Unlock()
		if has {
			return
		}
		if ended {
			t.Fatalf("the process ended without writing %q; it wrote:\n%s", s, l.String())
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %q; got:\n%s", s, l.String())
		}
	}
}

// sandgateArgv is the sandgate command line: run FLAGS -- CMD.
func sandgateArgv(flags []string, cmd ...string) []string {
	return append(append(append([]string{sandgateBin, "run"}, flags...), "--"), cmd...)
}

// runSandgate runs `sandgate run FLAGS -- CMD` in the host namespace as root
// and returns its outcome.
func (w *world) runSandgate(t *testing.T, flags []string, cmd ...string) outcome {
	t.Helper()
	return w.runSandgateEnv(t, nil, flags, cmd...)
}

// runSandgateEnv is runSandgate with variables added to sandgate's environment.
func (w *world) runSandgateEnv(t *testing.T, env []string, flags []string, cmd ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := w.hostCmd(ctx, nil, newHome(t, nil), sandgateArgv(flags, cmd...)...)
	c.Env = append(c.Env, env...)
	return finish(t, c)
}

// runHost runs argv directly in the host namespace (no sandbox) as root.
func (w *world) runHost(t *testing.T, argv ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return finish(t, w.hostCmd(ctx, nil, newHome(t, nil), argv...))
}
