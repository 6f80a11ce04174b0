package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	src := `
[network]
allowed_domains = ["github.com", "*.githubusercontent.com", "203.0.113.0/24:443"]
denied_domains = ["evil.example.com"]
allow_local_binding = true
allow_private_destinations = true
denied_resolved_addresses = ["198.51.100.7", "2001:db8::/48"]

[proxy]
max_header_bytes = 8192
header_timeout = "3s"
idle_timeout = "1m"
max_conns = 10
response_head_timeout = "45s"
`
	f, err := Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	pc := f.PolicyConfig(Overrides{Allow: []string{"example.org"}, Deny: []string{"bad.test"}})
	if got := strings.Join(pc.Allow, ","); got != "github.com,*.githubusercontent.com,203.0.113.0/24:443,example.org" {
		t.Errorf("allow = %q", got)
	}
	if got := strings.Join(pc.Deny, ","); got != "evil.example.com,bad.test" {
		t.Errorf("deny = %q", got)
	}
	if !pc.AllowPrivateDestinations || !f.AllowLocalBinding(Overrides{}) {
		t.Errorf("booleans not read: %+v", f.Network)
	}
	if len(pc.DeniedResolvedAddresses) != 2 {
		t.Errorf("denied_resolved_addresses = %v", pc.DeniedResolvedAddresses)
	}
	l := f.Limits()
	if l.MaxHeaderBytes != 8192 || l.HeaderTimeout != 3*time.Second || l.IdleTimeout != time.Minute || l.MaxConns != 10 || l.DialTimeout != 0 ||
		l.ResponseHeadTimeout != 45*time.Second {
		t.Errorf("limits = %+v", l)
	}
}

func TestFlagsOnlyAdd(t *testing.T) {
	f, err := Parse("t.toml", []byte("[network]\nallowed_domains=[\"a.test\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	pc := f.PolicyConfig(Overrides{AllowPrivateDestinations: true})
	if !pc.AllowPrivateDestinations || len(pc.Allow) != 1 {
		t.Errorf("override not applied: %+v", pc)
	}
	if f.AllowLocalBinding(Overrides{}) {
		t.Error("allow_local_binding defaulted to true")
	}
	if !f.AllowLocalBinding(Overrides{AllowLocalBinding: true}) {
		t.Error("flag did not enable allow_local_binding")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		wantLine  int
		wantEntry string
		wantText  string
	}{
		{"bad wildcard", "[network]\nallowed_domains = [\n  \"ok.test\",\n  \"*.com\",\n]\n", 4, "*.com", "public suffix"},
		{"bare star", "[network]\ndenied_domains = ['*']\n", 2, "*", ""},
		{"bad denied address", "[network]\n\ndenied_resolved_addresses = [\"not-an-ip\"]\n", 3, "not-an-ip", ""},
		{"unknown key", "[network]\nallowed_domain = [\"a.test\"]\n", 2, "network.allowed_domain", "unknown key"},
		{"syntax", "[network]\nallowed_domains = [\"a.test\"\n", 0, "", ""},
		{"wrong type", "[network]\nallow_local_binding = \"yes\"\n", 0, "", ""},
		{"bad duration", "[proxy]\nidle_timeout = \"soon\"\n", 0, "", "soon"},
		{"negative conns", "[proxy]\nmax_conns = -1\n", 2, "proxy.max_conns", "negative"},
		{"bad port", "[network]\nallowed_domains = [\"a.test:99999\"]\n", 2, "a.test:99999", ""},
	}
	for _, tt := range append(tests, filesystemErrorCases...) {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("conf.toml", []byte(tt.src))
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not *config.Error", err)
			}
			if !strings.HasPrefix(err.Error(), "conf.toml") {
				t.Errorf("error %q does not name the file", err)
			}
			if tt.wantLine != 0 && ce.Line != tt.wantLine {
				t.Errorf("line = %d, want %d (%v)", ce.Line, tt.wantLine, err)
			}
			if tt.name == "syntax" && ce.Line == 0 {
				t.Errorf("syntax error without a line: %v", err)
			}
			if ce.Entry != tt.wantEntry {
				t.Errorf("entry = %q, want %q (%v)", ce.Entry, tt.wantEntry, err)
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	// Missing default file: empty config, no error.
	f, err := Load("")
	if err != nil || len(f.Network.AllowedDomains) != 0 {
		t.Fatalf("Load default missing = %+v, %v", f, err)
	}
	// Missing explicit file: error.
	if _, err := Load(filepath.Join(dir, "nope.toml")); err == nil {
		t.Fatal("Load of a missing explicit file succeeded")
	}
	// Default file present.
	p, err := DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("[network]\nallowed_domains=[\"x.test\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err = Load("")
	if err != nil || len(f.Network.AllowedDomains) != 1 || f.Path != p {
		t.Fatalf("Load default = %+v, %v", f, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("[network]\nallowed_domains=[\"a.test\"]\n"))
	f.Add([]byte("[proxy]\nidle_timeout=\"5m\"\n"))
	f.Add([]byte("[network]\nallowed_domains=['*.com']"))
	f.Add([]byte("[filesystem]\nmode=\"readonly\"\nwrite=[\"~/x\"]\n[environment]\nkeep=[\"A_*\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := Parse("fuzz.toml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not *config.Error", err)
			}
			return
		}
		_ = cf.PolicyConfig(Overrides{})
	})
}
