//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox/internal/confine"
)

func TestMain(m *testing.M) {
	MaybeInit()
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// mustHaveSandbox handles a Run error that says enforcement is unavailable:
// a skip for unprivileged developers, a failure as root or when
// SANDGATE_REQUIRE_PRIVILEGED is set (CI).
func mustHaveSandbox(t *testing.T, err error) {
	t.Helper()
	if err == nil || !errors.Is(err, ErrUnavailable) {
		return
	}
	if os.Geteuid() != 0 && os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") == "" {
		t.Skipf("sandbox unavailable on this machine: %v", err)
	}
	t.Fatalf("sandbox unavailable (this test must run here): %v", err)
}

type outcome struct {
	res            Result
	err            error
	stdout, stderr string
	notes          []string // sandgate's own messages (Spec.Notify)
}

// notes collects the messages a run gives Spec.Notify.
type notes struct {
	mu   sync.Mutex
	msgs []string
}

func (n *notes) add(msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, msg)
}

func (n *notes) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// sandboxRun runs spec with the test binary as init, stdin from /dev/null
// and captured output, under a timeout.
func sandboxRun(t *testing.T, spec Spec) outcome {
	t.Helper()
	if spec.Executable == "" {
		spec.Executable = testBinary()
	}
	if spec.Stdin == nil {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer devnull.Close()
		spec.Stdin = devnull
	}
	var stdout, stderr bytes.Buffer
	if spec.Stdout == nil {
		spec.Stdout = &stdout
	}
	if spec.Stderr == nil {
		spec.Stderr = &stderr
	}
	var ns notes
	if spec.Notify == nil {
		spec.Notify = ns.add
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, spec)
	mustHaveSandbox(t, err)
	return outcome{res, err, stdout.String(), stderr.String(), ns.all()}
}

// helperSpec is a Spec running the test binary's helper name with args.
// (GORACE: a race-enabled helper would otherwise linger 1s at exit.)
func helperSpec(name string, args ...string) Spec {
	return Spec{
		Args: append([]string{testBinary()}, args...),
		Env:  append(os.Environ(), helperEnv+"="+name, "GORACE=atexit_sleep_ms=0"),
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badInterp := filepath.Join(dir, "bad-interpreter")
	if err := os.WriteFile(badInterp, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		note string // substring expected in sandgate's message (none when "")
	}{
		{"true", []string{"true"}, 0, ""},
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3, ""},
		{"SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15, ""},
		{"SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9, ""},
		{"not found", []string{"sandgate-no-such-command-xyz"}, 127, "sandgate-no-such-command-xyz: command not found"},
		{"missing path", []string{filepath.Join(dir, "missing")}, 127, "missing: no such file"},
		{"not executable", []string{notExec}, 126, "not-executable"},
		{"directory", []string{dir}, 126, filepath.Base(dir)},
		{"bad interpreter", []string{badInterp}, 126, "bad-interpreter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := sandboxRun(t, Spec{Args: tt.args, Network: NetworkNone})
			if o.err != nil {
				t.Fatalf("Run: %v", o.err)
			}
			if o.res.ExitCode != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", o.res.ExitCode, tt.code, o.stderr)
			}
			switch {
			case tt.note == "" && len(o.notes) != 0:
				t.Errorf("unexpected messages %q", o.notes)
			case tt.note != "" && (len(o.notes) != 1 || !strings.Contains(o.notes[0], tt.note)):
				t.Errorf("messages %q, want one mentioning %q", o.notes, tt.note)
			}
			if strings.Contains(o.stderr, "sandgate:") {
				t.Errorf("sandgate wrote to CMD's stderr: %q", o.stderr)
			}
		})
	}
}

func TestStdioPassThrough(t *testing.T) {
	o := sandboxRun(t, Spec{Args: []string{"sh", "-c", "cat; echo to-stderr >&2"}, Network: NetworkNone, Stdin: strings.NewReader("from stdin\n")})
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v", o.res, o.err)
	}
	if o.stdout != "from stdin\n" || o.stderr != "to-stderr\n" {
		t.Errorf("stdout %q stderr %q", o.stdout, o.stderr)
	}
}

// statusField returns the value of a /proc/PID/status field.
func statusField(t *testing.T, status, field string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(field) + `:\s*(.*)$`).FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("no %s in status:\n%s", field, status)
	}
	return strings.TrimSpace(m[1])
}

func TestCommandIsLockedDown(t *testing.T) {
	for _, network := range []Network{NetworkNone, NetworkFull} {
		t.Run(network.String(), func(t *testing.T) {
			spec := helperSpec("status")
			spec.Network = network
			o := sandboxRun(t, spec)
			if o.err != nil || o.res.ExitCode != 0 {
				t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
			}
			for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
				if v := statusField(t, o.stdout, f); v != "0000000000000000" {
					t.Errorf("%s = %s, want all zero", f, v)
				}
			}
			if v := statusField(t, o.stdout, "NoNewPrivs"); v != "1" {
				t.Errorf("NoNewPrivs = %s", v)
			}
			if v := statusField(t, o.stdout, "Seccomp"); v != "2" {
				t.Errorf("Seccomp = %s, want 2 (filter)", v)
			}
			if v := statusField(t, o.stdout, "Securebits"); v != fmt.Sprintf("%d <nil>", confine.LockedSecurebits) {
				t.Errorf("Securebits = %s, want %d", v, confine.LockedSecurebits)
			}
			if v := statusField(t, o.stdout, "Uid-inside"); v != strconv.Itoa(os.Getuid()) {
				t.Errorf("uid inside = %s, want the caller's %d", v, os.Getuid())
			}
			if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
				t.Errorf("the process that ran the sandbox is dumpable (%d, %v)", d, err)
			}
		})
	}
}

func TestSeccompFilter(t *testing.T) {
	// A unix socket on the host that the command must not reach.
	sock := filepath.Join(t.TempDir(), "host.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("AllowUnixSockets=%v", allow), func(t *testing.T) {
			spec := helperSpec("sockets", sock)
			spec.Network = NetworkNone
			spec.AllowUnixSockets = allow
			o := sandboxRun(t, spec)
			if o.err != nil || o.res.ExitCode != 0 {
				t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
			}
			unixWant := "EPERM"
			if allow {
				unixWant = "ok"
			}
			want := map[string]string{
				"unix-stream": unixWant, "unix-dgram": unixWant, "unix-highbits": unixWant, "unix-connect": unixWant,
				"socketpair": "ok", "inet": "ok", "inet6": "ok",
				"io_uring_setup": "EPERM", "io_uring_enter": "EPERM",
			}
			got := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(o.stdout), "\n") {
				k, v, _ := strings.Cut(line, " ")
				got[k] = v
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestPIDNamespace(t *testing.T) {
	spec := helperSpec("pid", strconv.Itoa(os.Getpid()))
	spec.Network = NetworkNone
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	// The init's threads take the first pids; CMD's is small and not the host's.
	if m := regexp.MustCompile(`pid (\d+) ppid`).FindStringSubmatch(o.stdout); m == nil {
		t.Errorf("no pid in %q", o.stdout)
	} else if pid, _ := strconv.Atoi(m[1]); pid < 2 || pid > 64 {
		t.Errorf("command's pid %d is not one of a fresh PID namespace", pid)
	}
	for _, want := range []string{
		" ppid 1\n",             // CMD is the init's child
		"procs 2\n",             // /proc shows the init and CMD, nothing of the host
		"kill ESRCH\n",          // sandgate's pid does not exist in here
		"kill1 ok\n",            // the kernel drops SIGKILL sent to the PID namespace's init from inside (the init survives)
		"init-environ EACCES\n", // the init is not dumpable: its /proc entries are closed to CMD
	} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, o.stdout)
		}
	}
}

// hostListener accepts on 127.0.0.1 of the host's network namespace and
// greets every client with line.
func hostListener(t *testing.T, line string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, line)
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestNetworkNone(t *testing.T) {
	addr := hostListener(t, "host-greeting")
	spec := helperSpec("net", addr)
	spec.Network = NetworkNone
	spec.Env = append(spec.Env, "HTTP_PROXY=http://proxy.example:3128", "no_proxy=x")
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	for _, want := range []string{
		"interfaces lo\n",
		"tcp " + addr + " ECONNREFUSED\n", // the sandbox's loopback is its own
		"raw EPERM\n", "packet EPERM\n",   // no CAP_NET_RAW
		"udp4 ENETUNREACH\n", "udp6 ENETUNREACH\n", // and no route but lo anyway
	} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, o.stdout)
		}
	}
	env := helperSpec("env", "HTTP_PROXY", "no_proxy")
	env.Network = NetworkNone
	env.Env = append(env.Env, "HTTP_PROXY=http://proxy.example:3128", "no_proxy=x")
	o = sandboxRun(t, env)
	if !strings.Contains(o.stdout, `HTTP_PROXY="" false`) || !strings.Contains(o.stdout, `no_proxy="" false`) {
		t.Errorf("inherited proxy variables not removed with NetworkNone:\n%s", o.stdout)
	}
}

func TestNetworkFull(t *testing.T) {
	addr := hostListener(t, "host-greeting")
	spec := helperSpec("net", addr)
	spec.Network = NetworkFull
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	if !strings.Contains(o.stdout, "tcp "+addr+" ok host-greeting\n") {
		t.Errorf("host listener not reachable with NetworkFull:\n%s", o.stdout)
	}
	if strings.Contains(o.stdout, "interfaces lo\n") {
		t.Errorf("NetworkFull should see the host's interfaces:\n%s", o.stdout)
	}
	env := helperSpec("env", "HTTP_PROXY")
	env.Network = NetworkFull
	env.Env = append(env.Env, "HTTP_PROXY=http://proxy.example:3128")
	o = sandboxRun(t, env)
	if !strings.Contains(o.stdout, `HTTP_PROXY="http://proxy.example:3128" true`) {
		t.Errorf("NetworkFull must keep the caller's environment:\n%s", o.stdout)
	}
}

func TestNetworkProxy(t *testing.T) {
	// An HTTP server and a line server on the host's loopback; only the
	// HTTP server is on the allow list.
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hsrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the host")
	})}
	go hsrv.Serve(hln)
	defer hsrv.Close()
	allowed := hln.Addr().String()
	socksTarget := hostListener(t, "socks-target-greeting")
	denied := hostListener(t, "must-not-be-reached")

	pol, err := policy.New(policy.Config{Allow: []string{allowed, socksTarget}})
	if err != nil {
		t.Fatal(err)
	}
	sum := audit.NewSummary()
	sh, sp, _ := net.SplitHostPort(socksTarget)
	spec := helperSpec("proxy", "http", allowed, "http", denied, "socks", sh, sp, "direct", allowed)
	spec.Gate = &egress.Gate{Policy: pol}
	spec.Audit = sum
	spec.Network = NetworkProxy
	spec.Env = append(spec.Env, "HTTPS_PROXY=http://corp.example:8080", "GIT_SSH_COMMAND=ssh -i key")
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 || o.res.ProxyErr != nil {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("http %s %q %q\n", allowed, "HTTP/1.1 200 OK", "hello from the host"),
		fmt.Sprintf("http %s \"HTTP/1.1 403 Forbidden\"", denied),
		fmt.Sprintf("socks %s ok socks-target-greeting\n", socksTarget),
		fmt.Sprintf("direct %s ECONNREFUSED\n", allowed), // no way around the proxy
	} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, o.stdout)
		}
	}
	if sum.Total() == 0 || len(sum.Refusals()) == 0 {
		t.Errorf("audit summary recorded no refusal: total %d, refusals %v", sum.Total(), sum.Refusals())
	}

	// The command's environment points at the proxies inside the sandbox.
	env := helperSpec("env", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "GIT_SSH_COMMAND")
	env.Gate, env.Network = spec.Gate, NetworkProxy
	env.Env = append(env.Env, "HTTPS_PROXY=http://corp.example:8080")
	o = sandboxRun(t, env)
	if o.err != nil {
		t.Fatal(o.err)
	}
	for _, re := range []string{
		`HTTP_PROXY="http://127\.0\.0\.1:\d+" true`,
		`HTTPS_PROXY="http://127\.0\.0\.1:\d+" true`,
		`ALL_PROXY="socks5h://127\.0\.0\.1:\d+" true`,
		`NO_PROXY="localhost,127\.0\.0\.1,::1" true`,
		`GIT_SSH_COMMAND=".*` + regexp.QuoteMeta(filepath.Base(testBinary())) + ` socks-connect 127\.0\.0\.1:\d+ %h %p'" true`,
	} {
		if !regexp.MustCompile(re).MatchString(o.stdout) {
			t.Errorf("environment lacks %s:\n%s", re, o.stdout)
		}
	}
}

// TestOnlyStdioReachesTheCommand checks that neither descriptors sandgate
// inherited without close-on-exec nor the proxy's listeners reach CMD.
func TestOnlyStdioReachesTheCommand(t *testing.T) {
	leak, err := unix.Open(os.DevNull, unix.O_RDONLY, 0) // no O_CLOEXEC on purpose
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)
	pol, err := policy.New(policy.Config{Allow: []string{"192.0.2.1:80"}})
	if err != nil {
		t.Fatal(err)
	}
	spec := helperSpec("fds")
	spec.Network, spec.Gate = NetworkProxy, &egress.Gate{Policy: pol}
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	var fds []string
	for _, line := range strings.Split(strings.TrimSpace(o.stdout), "\n") {
		f := strings.Fields(line)
		// Skip the directory being listed (closed by the time of readlink)
		// and the cgroup files the helper's own Go runtime keeps open.
		if len(f) < 3 || strings.HasPrefix(f[2], "/sys/fs/cgroup/") {
			continue
		}
		fds = append(fds, f[1])
		if strings.HasPrefix(f[2], "socket:") {
			t.Errorf("a socket reached the command: %s", line)
		}
		if f[1] == strconv.Itoa(leak) {
			t.Errorf("an inherited descriptor reached the command: %s", line)
		}
	}
	if strings.Join(fds, ",") != "0,1,2" {
		t.Errorf("command has descriptors %v, want 0,1,2:\n%s", fds, o.stdout)
	}
}

func TestSignalForwarding(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	spec := helperSpec("waitsig")
	spec.Network = NetworkNone
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
	// SIGTERM to the process running Run (this test process).
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	o := <-done
	if o.err != nil || o.res.ExitCode != 42 || !strings.Contains(string(rest), "got terminated") {
		t.Fatalf("result %+v err %v output %q", o.res, o.err, rest)
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

func TestWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	spec := helperSpec("pwd")
	spec.Network, spec.Dir = NetworkNone, dir
	o := sandboxRun(t, spec)
	if o.err != nil || strings.TrimSpace(o.stdout) != dir {
		t.Fatalf("pwd %q err %v", o.stdout, o.err)
	}
	spec.Dir = filepath.Join(dir, "missing")
	o = sandboxRun(t, spec)
	if o.err == nil || !strings.Contains(o.err.Error(), "working directory") || errors.Is(o.err, ErrUnavailable) {
		t.Fatalf("missing Dir: err %v, result %+v", o.err, o.res)
	}
}

func TestSpecErrors(t *testing.T) {
	ctx := context.Background()
	defer swapVar(&setupOptions.StateDir, t.TempDir())()
	_, err := Run(ctx, Spec{Args: []string{"true"}, Network: NetworkNone, Backend: BackendIdentity})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "identity backend is not set up") || !strings.Contains(err.Error(), "sandgate setup`") {
		t.Errorf("identity backend: %v", err)
	}
	if _, err := Run(ctx, Spec{Args: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "Gate") {
		t.Errorf("NetworkProxy without a Gate: %v", err)
	}
	if _, err := Run(ctx, Spec{Network: NetworkNone}); err == nil {
		t.Error("no command: no error")
	}
	if _, err := Run(ctx, Spec{Args: []string{"true"}, Network: NetworkNone, Executable: "/nonexistent/sandgate"}); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("missing executable: %v", err)
	}
}

// TestUserNamespacesRefused runs Run where nested user namespaces are
// limited to 0 (in a user namespace of the test's own, so the host's
// setting is untouched) and expects ErrUnavailable with the diagnosis.
func TestUserNamespacesRefused(t *testing.T) {
	cmd := exec.Command(testBinary())
	cmd.Env = append(os.Environ(), helperEnv+"=nouserns")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			mustHaveSandbox(t, fmt.Errorf("%w: %s", ErrUnavailable, out))
		}
		t.Fatalf("helper: %v\n%s", err, out)
	}
	for _, want := range []string{"cannot create the sandbox's namespaces", "user.max_user_namespaces is 0", "sandgate setup"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message lacks %q: %s", want, out)
		}
	}
}

// denyAllGate is a gate whose policy allows nothing.
func denyAllGate() *egress.Gate {
	pol, err := policy.New(policy.Config{})
	if err != nil {
		panic(err)
	}
	return &egress.Gate{Policy: pol}
}

// TestUnprivilegedCaller runs a whole sandbox as an unprivileged user (the
// no-root path) from a copy of the test binary that user can execute.
func TestUnprivilegedCaller(t *testing.T) {
	if os.Geteuid() != 0 {
		// The test itself is then the unprivileged path; nothing to switch.
		t.Skip("needs root to switch to an unprivileged user")
	}
	const nobody = 65534
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // both levels t.TempDir made 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "sandbox.test")
	data, err := os.ReadFile(testBinary())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"=unpriv", "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sandbox as uid %d: %v\n%s", nobody, err, out)
	}
	status := string(out)
	for _, f := range []string{"CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if v := statusField(t, status, f); v != "0000000000000000" {
			t.Errorf("%s = %s", f, v)
		}
	}
	if v := statusField(t, status, "Seccomp"); v != "2" {
		t.Errorf("Seccomp = %s", v)
	}
	if v := statusField(t, status, "Uid-inside"); v != strconv.Itoa(nobody) {
		t.Errorf("uid inside = %s, want %d", v, nobody)
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
