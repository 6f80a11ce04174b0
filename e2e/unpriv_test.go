//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// users counts the users made, for unique names.
var users atomic.Int32

// createUser adds a system user sgtest-PID-uN (no home, no login) and
// deletes it at the end of the test.
func createUser(t *testing.T) *testUser {
	t.Helper()
	name := fmt.Sprintf("%s%d-u%d", prefix, os.Getpid(), users.Add(1))
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", "-f", name).CombinedOutput(); err != nil {
			t.Errorf("userdel: %v: %s", err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &testUser{name: name, uid: uid, gid: gid}
}

// procOwner is the owner of /proc/PID/status: the process's effective uid
// when it is dumpable, root when it is not.
func procOwner(t *testing.T, pid int) int {
	t.Helper()
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// waitExec waits until process pid runs the program named comm (it starts
// as ip and setpriv, which exec it).
func waitExec(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(b)) == comm {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never became %s (%q, %v)", pid, comm, b, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procUIDs returns the Uid line of /proc/PID/status.
func procUIDs(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return ""
}

// TestRunUnprivileged runs the core end-to-end checks as an unprivileged user
// the test creates, to prove that sandgate needs no root: proxied HTTP,
// HTTPS and SOCKS work, direct traffic and the host's unix socket do not, a
// refusal is audited and summarised, CMD runs as the caller's own uid/gid
// with no capabilities. While it runs, the test checks from the host that the
// sandgate process is not dumpable and that the same user cannot ptrace it
// (while it can ptrace another process of its own).
func TestRunUnprivileged(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	u := createUser(t)
	dir := t.TempDir()
	chownForUser(t, dir, u)
	auditFile := filepath.Join(dir, "audit.jsonl")
	home := newHome(t, u)

	ids := fmt.Sprintf("uid=%d euid=%d gid=%d egid=%d", u.uid, u.uid, u.gid, u.gid)
	cs := []chk{
		succeeds("http", "http://remote4.test/").with("local=" + remoteV4 + ":80"),
		succeeds("https", "https://remote6.test/", w.caFile).with("proto=https", "local=["+remoteV6+"]:443"),
		succeeds("socks5", "remote.test:22").with("SSH-2.0-sgtest-banner"),
		succeeds("connect", "remote4.test:22").with("SSH-2.0-sgtest-banner"),
		fails("http", "http://unpriv-evil.test/").with("403"),
		fails("tcp", remoteV4+":80"),
		fails("tcp", "["+remoteV6+"]:80"),
		fails("udp", remoteV4+":9"),
		fails("icmp", remoteV4),
		fails("tcp", w.hostLoop4),
		fails("tcp", w.hostLAN4),
		fails("unix", w.hostSock),
		fails("ptrace-all"),
		succeeds("nocaps"),
		succeeds("ids").with(ids),
		succeeds("wait-stdin"),
	}
	// The proxy alone (TestRunTransparent runs the default as a user too).
	flags := []string{"--no-transparent", "--allow", "remote.test", "--allow", "remote4.test", "--allow", "remote6.test", "--audit", auditFile}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := w.hostCmd(ctx, u, home, sandgateArgv(flags, probeArgv(cs)...)...)
	stdout, stderr := newLines(), newLines()
	c.Stdout, c.Stderr = stdout, stderr
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := c.Wait()
		stdout.end()
		stderr.end()
		done <- err
	}()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		if t.Failed() {
			t.Logf("sandgate as %s:\n  stdout: %s\n  stderr: %s", u.name, indent(stdout.String()), indent(stderr.String()))
		}
	})
	pid := c.Process.Pid

	// The probe has done its checks and waits on stdin: sandgate is running.
	stdout.waitFor(t, `PROBE {"check":"ids"`, 30*time.Second)
	want := fmt.Sprintf("%d %d %d %d", u.uid, u.uid, u.uid, u.uid)
	if got := procUIDs(t, pid); got != want {
		t.Errorf("sandgate runs with uids %q, want %q", got, want)
	}
	if owner := procOwner(t, pid); owner != 0 {
		t.Errorf("/proc/%d/status is owned by %d: sandgate is dumpable (want it owned by root, as for non-dumpable processes)", pid, owner)
	}

	// The same user, from the host, cannot ptrace sandgate, but can ptrace a
	// process of its own that is dumpable (the control).
	sleeper := w.hostCmd(ctx, u, home, probeBin, "sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	waitExec(t, sleeper.Process.Pid, "probe")
	if owner := procOwner(t, sleeper.Process.Pid); owner != u.uid {
		t.Errorf("control: /proc/PID/status of the user's own process is owned by %d, want %d", owner, u.uid)
	}
	control := []chk{succeeds("ptrace", strconv.Itoa(sleeper.Process.Pid))}
	expectProbes(t, finish(t, w.hostCmd(ctx, u, home, probeArgv(control)...)), control)
	attack := []chk{fails("ptrace", strconv.Itoa(pid))}
	expectProbes(t, finish(t, w.hostCmd(ctx, u, home, probeArgv(attack)...)), attack)

	stdin.Close()
	var code int
	select {
	case err := <-done:
		code = exitCode(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("sandgate did not end after its stdin was closed")
	}
	o := outcome{code: code, stdout: stdout.String(), stderr: stderr.String()}
	o.probes = parseProbes(t, o.stdout)
	t.Logf("unprivileged run: exit %d\n  stdout: %s\n  stderr: %s", o.code, indent(o.stdout), indent(o.stderr))
	expectProbes(t, o, cs)

	if !strings.Contains(o.stderr, "sandgate: refused") || !strings.Contains(o.stderr, "unpriv-evil.test:80") {
		t.Errorf("stderr lacks the refusal summary for unpriv-evil.test:80:\n%s", o.stderr)
	}
	evs := readAudit(t, auditFile)
	findAudit(t, evs, "unpriv-evil.test", 80, "deny", "not-allowed")
	findAudit(t, evs, "remote4.test", 80, "allow", "")
	if w.dns.asked("unpriv-evil.test") {
		t.Errorf("the DNS server was asked about the refused name unpriv-evil.test")
	}
}
