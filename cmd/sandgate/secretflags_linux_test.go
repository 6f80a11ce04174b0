//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunSecret runs a real sandbox with two secrets (one from the
// environment, one from a file) and checks what CMD sees: placeholders of
// the values' shape in $NAME, the real values nowhere in its environment
// or output.
func TestRunSecret(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	withoutSecretEnv(t)
	const envValue = "ghp_SgTest0EnvValue0123456789abcdefABCD"
	const fileValue = "xoxb-123456789012-1234567890123-SgTestFileValueAbCdEfGh"
	t.Setenv("SGTEST_GH_TOKEN", envValue)
	t.Setenv("SGTEST_COPY", "copy:"+envValue)
	file := filepath.Join(t.TempDir(), "slack")
	if err := os.WriteFile(file, []byte(fileValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "run", "--quiet", "--no-transparent", "--env", "SGTEST_COPY",
		"--allow", "api.github.com", "--allow", "github.com", "--allow", "slack.com",
		"--secret", "SGTEST_GH_TOKEN=api.github.com,github.com",
		"--secret", "SGTEST_SLACK@"+file+"=slack.com",
		"--", "sh", "-c", `echo "gh=$SGTEST_GH_TOKEN"; echo "slack=$SGTEST_SLACK"; env; cat "$1" 2>&1; true`, "sh", file)
	if code == exitFailure && strings.Contains(stderr, "sandbox enforcement unavailable") {
		if os.Geteuid() != 0 && os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") == "" {
			t.Skipf("no sandbox on this machine: %s", stderr)
		}
		t.Fatalf("no sandbox (this test must run here): %s", stderr)
	}
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, v := range []string{envValue, fileValue} {
		if strings.Contains(stdout, v) || strings.Contains(stderr, v) {
			t.Errorf("CMD's output or sandgate's stderr holds the real value %q:\n%s\n%s", v, stdout, stderr)
		}
	}
	var gh, slack string
	for _, l := range strings.Split(stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "gh="); ok {
			gh = v
		}
		if v, ok := strings.CutPrefix(l, "slack="); ok {
			slack = v
		}
	}
	if len(gh) != len(envValue) || !strings.HasPrefix(gh, "ghp_") {
		t.Errorf("$SGTEST_GH_TOKEN in CMD is %q, want a placeholder shaped like %q", gh, envValue)
	}
	if len(slack) != len(fileValue) || !strings.HasPrefix(slack, "xoxb-") || strings.Count(slack, "-") != 3 || slack[17] != '-' {
		t.Errorf("$SGTEST_SLACK in CMD is %q, want a placeholder shaped like %q", slack, fileValue)
	}
	if !strings.Contains(stdout, "SGTEST_COPY=copy:"+gh) {
		t.Errorf("a kept variable holding the value did not get the placeholder:\n%s", stdout)
	}
}
