package main

import (
	"strings"
	"testing"
)

// TestMissingArgsPrintUsage: a command without its required arguments
// prints its usage line and a hint, exit 2, never cobra's
// "requires at least 1 arg(s)".
func TestMissingArgsPrintUsage(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	tests := []struct {
		args  []string
		usage string
		hint  string
	}{
		{[]string{"run", "--allow", "example.com"}, "usage: sandgate run [flags] -- CMD [ARG]...\n", "after --"},
		{[]string{"run", "--allow", "example.com", "--"}, "usage: sandgate run [flags] -- CMD [ARG]...\n", "after --"},
		{[]string{"check", "--allow", "example.com"}, "usage: sandgate check [flags] [METHOD] TARGET\n", "one target"},
		{[]string{"check", "GET", "a.test", "b.test"}, "usage: sandgate check [flags] [METHOD] TARGET\n", "one target"},
		{[]string{"proxy", "example.com"}, "usage: sandgate proxy [flags]\n", "--allow example.com"},
		{[]string{"socks-connect", "127.0.0.1:1080"}, "usage: sandgate socks-connect SOCKSADDR HOST PORT [flags]\n", "SOCKS5"},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(t, tt.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tt.args, code, exitUsage)
		}
		if !strings.HasPrefix(errOut, tt.usage) || !strings.Contains(errOut, tt.hint) {
			t.Errorf("%v: stderr %q, want %q and a hint with %q", tt.args, errOut, tt.usage, tt.hint)
		}
		if strings.Contains(errOut, "arg(s)") || strings.Count(errOut, "\n") != 2 {
			t.Errorf("%v: stderr %q is not exactly the usage and hint lines", tt.args, errOut)
		}
	}
}
