package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary serve as sandgate's own hidden roles (the
// sandbox's init re-executes /proc/self/exe), as main does.
func TestMain(m *testing.M) {
	if code, ok := hiddenRole(os.Args); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestHiddenRoleOrdinaryInvocation(t *testing.T) {
	for _, args := range [][]string{{"sandgate"}, {"sandgate", "run", "--", "true"}, {"sandgate", "proxy"}} {
		if _, ok := hiddenRole(args); ok {
			t.Errorf("hiddenRole(%q) claims an ordinary invocation", args)
		}
	}
}
