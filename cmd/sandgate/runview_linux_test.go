//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunView checks run's file system flags end to end: the audit file
// stays out of CMD's reach even inside the workspace, a path that cannot be
// planned exits 2 naming it, and --fs host says what it means.
func TestRunView(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	withoutSecretEnv(t)
	ws, err := os.MkdirTemp("/var/lib", "sandgate-cli-view-")
	if err != nil {
		if os.Geteuid() != 0 && os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") == "" {
			t.Skipf("cannot make a workspace outside /tmp: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	audit := filepath.Join(ws, "audit.jsonl")
	script := "true > " + audit + "; echo forged >> " + audit + "; echo made > " + filepath.Join(ws, "new.txt")
	code, _, stderr := runCLI(t, "run", "--network", "none", "--fs", "workspace", "--workspace", ws, "--audit", audit, "--", "/bin/sh", "-c", script)
	if code == exitFailure && strings.Contains(stderr, "sandbox enforcement unavailable") {
		if os.Geteuid() != 0 && os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") == "" {
			t.Skipf("no sandbox on this machine: %s", stderr)
		}
		t.Fatalf("no sandbox (this test must run here): %s", stderr)
	}
	if code != 0 || strings.Count(stderr, "Read-only file system") != 2 {
		t.Errorf("code %d, stderr %q; want 0 with both writes to the audit file refused", code, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "new.txt")); err != nil || string(b) != "made\n" {
		t.Errorf("the workspace write did not reach the host: %q %v", b, err)
	}
	if b, err := os.ReadFile(audit); err != nil || len(b) != 0 {
		t.Errorf("audit file on the host: %q %v (want it empty: --network none records nothing)", b, err)
	}

	missing := filepath.Join(ws, "missing")
	code, _, stderr = runCLI(t, "run", "--network", "none", "--fs", "workspace", "--workspace", ws, "--write", missing, "--", "true")
	if code != exitUsage || !strings.Contains(stderr, "write "+missing+": does not exist") {
		t.Errorf("--write missing: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "run", "--network", "none", "--fs", "host", "--", "true")
	if code != 0 || strings.Count(stderr, "--fs host: no file system restriction") != 1 {
		t.Errorf("--fs host: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "run", "--fs", "sometimes", "--", "true")
	if code != exitUsage || !strings.Contains(stderr, `"sometimes"`) {
		t.Errorf("--fs sometimes: code %d, stderr %q", code, stderr)
	}
}
