package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// argHints are the second line printed when a command gets the wrong
// number of arguments, keyed by the command's name.
var argHints = map[string]string{
	"run":           "give the command to run after --, e.g. sandgate run --allow example.com -- curl https://example.com/",
	"check":         "give one target, a URL or HOST[:PORT], and a METHOD before it to decide a request, e.g. sandgate check --allow example.com https://example.com/",
	"proxy":         "proxy takes no arguments; destinations go in --allow, e.g. sandgate proxy --allow example.com",
	"setup":         "setup takes no arguments; see the flags in sandgate setup --help",
	"version":       "version takes no arguments",
	"socks-connect": "give the SOCKS5 proxy address, the host and the port, e.g. sandgate socks-connect 127.0.0.1:1080 example.com 22",
}

// usageOnArgErrors replaces cobra's "requires at least 1 arg(s)" of every
// subcommand of root by the command's usage line and one hint line on
// stderr, and exit status 2.
func usageOnArgErrors(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Args == nil {
			continue
		}
		c.Args = usageArgs(c.Args, argHints[c.Name()])
	}
}

// usageArgs wraps an argument check so that its failure prints
// "usage: …" and the hint instead of cobra's own text.
func usageArgs(check cobra.PositionalArgs, hint string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err == nil {
			return nil
		}
		w := cmd.ErrOrStderr()
		fmt.Fprintf(w, "usage: %s\n", cmd.UseLine())
		if hint == "" {
			hint = "see " + cmd.CommandPath() + " --help"
		}
		fmt.Fprintf(w, "sandgate: %s\n", hint)
		return &exitError{code: exitUsage}
	}
}
