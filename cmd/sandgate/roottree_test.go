package main

import (
	"bytes"
	"fmt"
	"testing"
)

func TestSubcommandNames(t *testing.T) {
	for _, sc := range subcommands {
		if got := sc.build().Name(); got != sc.name {
			t.Errorf("subcommand listed as %q builds %q", sc.name, got)
		}
	}
	if n := len(newRootCmd().Commands()); n != len(subcommands) {
		t.Errorf("the whole tree has %d commands, the list %d", n, len(subcommands))
	}
}

// treeOutput runs args on the tree rootCmdFor builds (lazy) or on the whole
// tree and returns everything the commands printed and the error.
func treeOutput(args []string, lazy bool) string {
	root := newRootCmd()
	if lazy {
		root = rootCmdFor(args)
	}
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return fmt.Sprintf("stdout %q\nstderr %q\nerror %v", out.String(), errOut.String(), err)
}

// TestLazyTreeSameOutput: a tree with only the named subcommand prints
// what the whole tree prints, for help, flag errors and argument errors.
func TestLazyTreeSameOutput(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, sc := range subcommands {
		if len(rootCmdFor([]string{sc.name}).Commands()) != 1 {
			t.Errorf("rootCmdFor(%q) builds more than that command", sc.name)
		}
		for _, args := range [][]string{{sc.name, "--help"}, {sc.name, "-h"}, {sc.name, "--no-such-flag"}} {
			if lazy, whole := treeOutput(args, true), treeOutput(args, false); lazy != whole {
				t.Errorf("%q: the lazy tree printed\n%s\nthe whole tree\n%s", args, lazy, whole)
			}
		}
	}
	for _, args := range [][]string{{"run"}, {"check"}, {"version", "extra"}, {"socks-connect", "x"}, {"proxy", "extra"}} {
		if lazy, whole := treeOutput(args, true), treeOutput(args, false); lazy != whole {
			t.Errorf("%q: the lazy tree printed\n%s\nthe whole tree\n%s", args, lazy, whole)
		}
	}
	for _, args := range [][]string{nil, {"--help"}, {"help", "run"}, {"runn"}, {"--version"}} {
		if n := len(rootCmdFor(args).Commands()); n != len(subcommands) {
			t.Errorf("rootCmdFor(%q) has %d commands, want the whole tree", args, n)
		}
	}
}
