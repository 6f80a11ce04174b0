package main

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// noSuchHost is a resolver for which every name is NXDOMAIN.
type noSuchHost struct{ asked []string }

func (r *noSuchHost) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, host)
	return nil, errors.New("lookup " + host + ": no such host")
}

// TestCheckAllowedButUnresolved: an allowed name that does not resolve
// says which entry allows it and why it cannot be reached, exit 3; a name
// the policy refuses is still a plain deny (exit 1) without a lookup.
func TestCheckAllowedButUnresolved(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	r := &noSuchHost{}
	checkResolver = r
	t.Cleanup(func() { checkResolver = nil })
	code, out, _ := runCLI(t, "check", "--allow", "*.example.invalid", "https://www.example.invalid/")
	want := `allowed by entry "*.example.invalid", but www.example.invalid does not resolve from here (look up www.example.invalid: lookup www.example.invalid.: no such host)`
	if code != exitUnresolved || strings.TrimSpace(out) != want {
		t.Errorf("exit %d, stdout %q; want exit %d and %q", code, out, exitUnresolved, want)
	}
	if len(r.asked) != 1 {
		t.Errorf("lookups %v, want exactly one", r.asked)
	}
	code, out, _ = runCLI(t, "check", "--allow", "*.example.invalid", "other.invalid")
	if code != exitDenied || !strings.HasPrefix(out, "deny other.invalid:443 (not-allowed)") || len(r.asked) != 1 {
		t.Errorf("refused name: exit %d, stdout %q, lookups %v", code, out, r.asked)
	}
}

func TestCheckHelpDocumentsExitThree(t *testing.T) {
	code, out, _ := runCLI(t, "check", "--help")
	if code != 0 || !strings.Contains(out, "3 allowed by an entry but the name does") {
		t.Errorf("exit %d, help %q", code, out)
	}
}
