//go:build linux

package main

import (
	"os"
	"strings"
	"testing"
)

// TestRunMessages checks sandgate's own line about a command that cannot
// be executed, byte for byte, on sandgate's stderr: the library hands it
// to Spec.Notify and the CLI prints it.
func TestRunMessages(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	withoutSecretEnv(t) // or the exit summary names them
	code, stdout, stderr := runCLI(t, "run", "--network", "none", "--", "sandgate-no-such-command-xyz", "arg")
	if code == exitFailure && strings.Contains(stderr, "sandbox enforcement unavailable") {
		if os.Geteuid() != 0 && os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") == "" {
			t.Skipf("no sandbox on this machine: %s", stderr)
		}
		t.Fatalf("no sandbox (this test must run here): %s", stderr)
	}
	if code != 127 || stdout != "" || stderr != "sandgate: sandgate-no-such-command-xyz: command not found\n" {
		t.Errorf("code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
