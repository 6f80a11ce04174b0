//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox/internal/confine"
)

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
	unixListener(t, sock)
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
				"socketpair": "ok", "socketpair-dgram": unixWant, "inet": "ok", "inet6": "ok",
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
