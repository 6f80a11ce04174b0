//go:build !windows

package main

// elevatedSetup: there is no elevated setup helper off Windows (setup
// runs as root directly).
func elevatedSetup([]string) (int, bool) { return 0, false }
