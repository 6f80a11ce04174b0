package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox"
)

func mustPolicy(t *testing.T, c policy.Config) *policy.Policy {
	t.Helper()
	p, err := policy.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSetupInspection(t *testing.T) {
	plain := mustPolicy(t, policy.Config{Allow: []string{"a.test"}})
	ro := mustPolicy(t, policy.Config{ReadOnly: []string{"a.test"}})
	for _, tc := range []struct {
		name    string
		pol     *policy.Policy
		network sandbox.Network
		want    bool
	}{
		{"no rules", plain, sandbox.NetworkProxy, false},
		{"read-only", ro, sandbox.NetworkProxy, true},
		{"read-only, no network", ro, sandbox.NetworkNone, false},
		{"read-only, full network", ro, sandbox.NetworkFull, false},
		{"no rules, live policy", plain, sandbox.NetworkProxy, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := sandbox.Spec{Network: tc.network}
			if strings.Contains(tc.name, "live") {
				spec.Gate = &egress.Gate{Live: egress.NewLive(tc.pol)}
			}
			if err := setupInspection(&spec, tc.pol); err != nil {
				t.Fatal(err)
			}
			if (spec.Authority != nil) != tc.want || (len(spec.TrustPEM) > 0) != tc.want {
				t.Fatalf("Authority %v, TrustPEM %d bytes; want inspection %v", spec.Authority != nil, len(spec.TrustPEM), tc.want)
			}
			if !tc.want {
				return
			}
			if bytes.Contains(spec.TrustPEM, []byte("PRIVATE KEY")) {
				t.Fatal("TrustPEM holds a private key")
			}
			block, _ := pem.Decode(spec.TrustPEM)
			if block == nil || block.Type != "CERTIFICATE" {
				t.Fatalf("TrustPEM is not a certificate: %q", spec.TrustPEM)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil || !cert.IsCA || !cert.Equal(spec.Authority.Certificate()) {
				t.Fatalf("TrustPEM is not the run CA (%v)", err)
			}
		})
	}
}

func TestProxyInspection(t *testing.T) {
	var stderr bytes.Buffer
	a, cleanup, err := proxyInspection(mustPolicy(t, policy.Config{Allow: []string{"a.test"}}), "", &stderr)
	cleanup()
	if err != nil || a != nil || stderr.Len() != 0 {
		t.Fatalf("no inspection: authority %v, err %v, said %q", a, err, stderr.String())
	}

	out := filepath.Join(t.TempDir(), "ca.pem")
	a, cleanup, err = proxyInspection(mustPolicy(t, policy.Config{ReadOnly: []string{"a.test"}}), out, &stderr)
	if err != nil || a == nil {
		t.Fatalf("--ca-out: %v", err)
	}
	cleanup()
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, a.CertPEM()) {
		t.Fatalf("--ca-out file: %v %q", err, got)
	}
	if !strings.Contains(stderr.String(), out) {
		t.Errorf("stderr %q does not name %s", stderr.String(), out)
	}

	// A --ca-out that cannot be written is the user's to fix: exit 2.
	_, cleanup, err = proxyInspection(mustPolicy(t, policy.Config{ReadOnly: []string{"a.test"}}), filepath.Join(t.TempDir(), "no", "ca.pem"), &stderr)
	cleanup()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), "--ca-out") || !strings.Contains(err.Error(), "a directory that exists") {
		t.Errorf("unwritable --ca-out: %v, want a usage error naming --ca-out and the fix", err)
	}

	stderr.Reset()
	a, cleanup, err = proxyInspection(mustPolicy(t, policy.Config{ReadOnlyGit: []string{"git.test"}}), "", &stderr)
	if err != nil || a == nil {
		t.Fatalf("temporary CA file: %v", err)
	}
	line := strings.TrimSpace(stderr.String())
	i := strings.Index(line, "in /")
	if i < 0 {
		t.Fatalf("stderr %q names no file", line)
	}
	path := strings.Fields(line[i+3:])[0]
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, a.CertPEM()) {
		t.Fatalf("temporary CA file %s: %v", path, err)
	}
	cleanup()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("temporary CA file %s left behind: %v", path, err)
	}
}

// TestRuleFlagsParse: --read-only, --read-only-git and --inspect reach the
// policy (a bad entry is a usage error naming it; a good one allows its
// host in `sandgate check`).
func TestRuleFlagsParse(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	checkResolver = &noSuchHost{}
	t.Cleanup(func() { checkResolver = nil })
	for _, args := range [][]string{
		{"--read-only", "ro.example.invalid/docs/**"},
		{"--read-only-git", "ro.example.invalid/acme/*"},
		{"--allow", "GET,HEAD ro.example.invalid/x/**"},
	} {
		code, out, _ := runCLI(t, append(append([]string{"check"}, args...), "ro.example.invalid")...)
		if code != exitUnresolved || !strings.Contains(out, "ro.example.invalid") {
			t.Errorf("%v: exit %d, stdout %q; want the host allowed (exit %d)", args, code, out, exitUnresolved)
		}
	}
	for _, args := range [][]string{
		{"--read-only", "GET ro.example.invalid"},
		{"--read-only-git", "ro.example.invalid:0"},
		{"--inspect", "ro.example.invalid/x"},
	} {
		code, _, stderr := runCLI(t, append(append([]string{"check"}, args...), "ro.example.invalid")...)
		if code != exitUsage || !strings.Contains(stderr, args[1]) {
			t.Errorf("%v: exit %d, stderr %q; want a usage error naming the entry", args, code, stderr)
		}
	}
}

func TestRefusalLineOfRequestRule(t *testing.T) {
	text := "POST a.test/x is not allowed; allowed there: --read-only a.test; to allow it, add --allow 'POST a.test:443/x'"
	line := refusalLine([]audit.Refusal{{Host: "a.test", Port: 443, Reason: "blocked-by-method", Text: text, Count: 2}})
	if !strings.HasSuffix(line, "; "+text) || !strings.Contains(line, "a.test:443 (method not allowed by the host's rules) ×2") {
		t.Errorf("refusal line %q", line)
	}
}
