//go:build linux

package main

import (
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// countingUnixListener listens on the unix socket path until the test
// ends and counts the connections it accepts (closing each).
func countingUnixListener(t *testing.T, path string) *atomic.Int32 {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return &n
}

// TestRunAllowUnixSocket: --allow-unix-socket lets ssh-add inside reach
// the socket it names, and no other.
func TestRunAllowUnixSocket(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	withoutSecretEnv(t)
	dir := t.TempDir()
	agent, other := filepath.Join(dir, "agent.sock"), filepath.Join(dir, "other.sock")
	toAgent, toOther := countingUnixListener(t, agent), countingUnixListener(t, other)
	t.Setenv("SSH_AUTH_SOCK", agent)
	code, _, stderr := runCLI(t, "run", "--network", "none", "--allow-unix-socket", agent, "--", "ssh-add", "-l")
	if strings.Contains(stderr, "sandbox enforcement unavailable") {
		t.Fatalf("no sandbox (this test must run here): %s", stderr)
	}
	if toAgent.Load() == 0 {
		t.Fatalf("ssh-add never reached the allowed socket (exit %d, stderr %q)", code, stderr)
	}
	t.Setenv("SSH_AUTH_SOCK", other)
	code, _, stderr = runCLI(t, "run", "--network", "none", "--allow-unix-socket", agent, "--", "ssh-add", "-l")
	if code == 0 || toOther.Load() != 0 || !strings.Contains(stderr, "ermission denied") {
		t.Fatalf("ssh-add reached a socket that is not allowed: exit %d, %d connections, stderr %q", code, toOther.Load(), stderr)
	}
}
