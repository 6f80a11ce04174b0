//go:build windows

package main

import "github.com/sandgate/sandgate/setup"

// elevatedSetup runs the elevated setup helper (sandgate
// setup.ElevatedArg REQUEST) that an unelevated setup starts.
func elevatedSetup(args []string) (int, bool) {
	if len(args) < 2 || args[1] != setup.ElevatedArg {
		return 0, false
	}
	return setup.ElevatedMain(args[2:]), true
}
