package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/audit"
)

func TestParseCheckTarget(t *testing.T) {
	tests := []struct {
		in      string
		host    string
		port    uint16
		wantErr string
	}{
		{"https://example.com/x", "example.com", 443, ""},
		{"http://example.com", "example.com", 80, ""},
		{"wss://example.com:8443/socket", "example.com", 8443, ""},
		{"ssh://git@example.com/repo", "example.com", 22, ""},
		{"http://[2001:db8::1]:8080/", "2001:db8::1", 8080, ""},
		{"example.com", "example.com", 443, ""},
		{"example.com:22", "example.com", 22, ""},
		{"[2001:db8::1]:80", "2001:db8::1", 80, ""},
		{"[2001:db8::1]", "2001:db8::1", 443, ""},
		{"gopher://example.com", "", 0, "no default port"},
		{"example.com:0", "", 0, "invalid port"},
		{"example.com:70000", "", 0, "invalid port"},
		{"http://", "", 0, "no host"},
		{":80", "", 0, "no host"},
	}
	for _, tt := range tests {
		host, port, err := parseCheckTarget(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseCheckTarget(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || host != tt.host || port != tt.port {
			t.Errorf("parseCheckTarget(%q) = %q, %d, %v; want %q, %d", tt.in, host, port, err, tt.host, tt.port)
		}
	}
}

func TestCheckListenAddr(t *testing.T) {
	tests := []struct {
		addr      string
		creds     bool
		open      bool
		wantError bool
	}{
		{"127.0.0.1:3128", false, false, false},
		{"[::1]:3128", false, false, false},
		{"localhost:3128", false, false, false},
		{"0.0.0.0:3128", false, false, true},
		{":3128", false, false, true},
		{"192.0.2.1:3128", false, false, true},
		{"192.0.2.1:3128", true, false, false},
		{"[::]:3128", false, true, false},
		{"nonsense", false, false, true},
	}
	for _, tt := range tests {
		err := checkListenAddr(tt.addr, tt.creds, tt.open)
		if (err != nil) != tt.wantError {
			t.Errorf("checkListenAddr(%q, creds=%v, open=%v) = %v", tt.addr, tt.creds, tt.open, err)
		}
	}
}

func TestRefusalLine(t *testing.T) {
	if got := refusalLine(nil); got != "" {
		t.Errorf("refusalLine(nil) = %q, want empty", got)
	}
	tests := []struct {
		r    audit.Refusal
		hint string
	}{
		{audit.Refusal{Host: "evil.test", Port: 443, Reason: "not-allowed", Count: 2}, "add --allow evil.test:443"},
		{audit.Refusal{Host: "2001:db8::1", Port: 80, Reason: "not-allowed", Count: 1}, "add --allow '[2001:db8::1]:80'"},
		{audit.Refusal{Host: "db.test", Port: 5432, Reason: "address-class:private", Count: 1}, "--allow-private-destinations"},
		{audit.Refusal{Host: "169.254.169.254", Port: 80, Reason: "address-class:metadata", Count: 1}, ""},
		{audit.Refusal{Host: "bad.test", Port: 80, Reason: "denied", Count: 1}, "deny entry"},
		{audit.Refusal{Host: "dns.test", Port: 0, Reason: "not-allowed", Count: 1}, "to allow dns.test, add --allow dns.test:PORT"},
		{audit.Refusal{Host: "dns.test", Port: 0, Reason: "dns-type-not-served", Count: 1}, ""},
		{audit.Refusal{Host: "api.test", Port: 443, Reason: "upstream-tls", Text: "the certificate of api.test did not verify: signed by an unknown authority", Count: 1},
			"api.test:443 (host's certificate did not verify); the certificate of api.test did not verify: signed by an unknown authority"},
		{audit.Refusal{Host: "other.test", Port: 443, Reason: "secret-not-bound", Text: "the placeholder of secret TOKEN is in the header Authorization", Count: 1},
			"(a secret's placeholder sent to a host it is not bound to); the placeholder of secret TOKEN"},
	}
	for _, tt := range tests {
		line := refusalLine([]audit.Refusal{tt.r})
		if !strings.HasPrefix(line, "sandgate: refused ") {
			t.Errorf("line %q lacks the prefix", line)
		}
		if tt.hint == "" {
			if strings.Contains(line, "--allow") {
				t.Errorf("metadata refusal offered a flag: %q", line)
			}
			continue
		}
		if !strings.Contains(line, tt.hint) {
			t.Errorf("line %q lacks hint %q", line, tt.hint)
		}
	}
}

// runCLI runs the CLI in-process, capturing stdout and stderr.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	defer func() { os.Stdout, os.Stderr = oldOut, oldErr }()
	code = run(args)
	wo.Close()
	we.Close()
	var o, e bytes.Buffer
	_, _ = o.ReadFrom(ro)
	_, _ = e.ReadFrom(re)
	return code, o.String(), e.String()
}

func TestCheckCommand(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	// Refused before any lookup: no DNS is involved.
	code, out, _ := runCLI(t, "check", "--allow", "example.com", "https://evil.test/")
	if code != exitDenied || !strings.Contains(out, "deny evil.test:443 (not-allowed)") {
		t.Errorf("check evil.test: code %d, out %q", code, out)
	}
	// An IP literal needs no lookup either.
	code, out, _ = runCLI(t, "check", "--allow", "203.0.113.10:443", "203.0.113.10:443")
	if code != 0 || !strings.HasPrefix(out, "allow 203.0.113.10:443") {
		t.Errorf("check literal: code %d, out %q", code, out)
	}
	// A broad allow entry does not open the metadata address inside it.
	code, out, _ = runCLI(t, "check", "--allow", "169.254.0.0/16", "169.254.169.254:80")
	if code != exitDenied || !strings.Contains(out, "address-class:metadata") {
		t.Errorf("check metadata: code %d, out %q", code, out)
	}
}

func TestBadConfigExitsTwo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(path, []byte("[network]\nallowed_domains = [\n  \"ok.test\",\n  \"*.com\",\n]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "check", "--config", path, "ok.test")
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errOut, path+":4") || !strings.Contains(errOut, `"*.com"`) {
		t.Errorf("stderr %q does not name file, line 4 and the entry", errOut)
	}
	code, _, errOut = runCLI(t, "check", "--allow", "*", "ok.test")
	if code != exitUsage || !strings.Contains(errOut, `"*"`) {
		t.Errorf("bad --allow: exit %d, stderr %q", code, errOut)
	}
}

func TestProxyRefusesOpenListener(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	code, _, errOut := runCLI(t, "proxy", "--http", "0.0.0.0:0", "--socks", "", "--allow", "example.com")
	if code != exitUsage || !strings.Contains(errOut, "--allow-open-proxy") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestRunRejectsBadModes(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, args := range [][]string{
		{"run", "--network", "sometimes", "--", "true"},
		{"run", "--backend", "magic", "--", "true"},
	} {
		code, _, errOut := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(errOut, "invalid --") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// TestRunUnixSocketPathErrors: an allowed unix socket (config or flag)
// that is missing or not a socket stops the run with exit 2 naming it,
// never a run without it.
func TestRunUnixSocketPathErrors(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	missing := filepath.Join(dir, "agent.sock")
	path := filepath.Join(dir, "socks.toml")
	if err := os.WriteFile(path, []byte("[network]\nallow_unix_sockets = [\""+filepath.ToSlash(missing)+"\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--config", path, "--", "true"}, filepath.ToSlash(missing)},
		{[]string{"run", "--allow-unix-socket", plain, "--", "true"}, plain + " is not a unix socket"},
	} {
		want := tt.want
		if runtime.GOOS != "linux" {
			want = "enforced on Linux only"
		}
		code, _, errOut := runCLI(t, tt.args...)
		if code != exitUsage || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d, stderr %q, want exit %d naming %q", tt.args, code, errOut, exitUsage, want)
		}
	}
}
