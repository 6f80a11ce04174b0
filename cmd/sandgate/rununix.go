package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/sandgate/sandgate/config"
)

// unixSocketPaths returns the unix sockets CMD may connect to (and no
// other): network.allow_unix_sockets then --allow-unix-socket, "~"
// expanded, relative flags taken from the working directory. Each must be
// a unix socket now; a run that names one where sandgate cannot enforce it
// (not Linux) is refused rather than started without it.
func unixSocketPaths(cf *config.File, flags []string) ([]string, error) {
	abs := make([]string, 0, len(flags))
	for _, p := range flags {
		abs = append(abs, absFlagPath(p))
	}
	entries := cf.UnixSockets(abs)
	if len(entries) == 0 {
		return nil, nil
	}
	if runtime.GOOS != "linux" {
		return nil, usageErr("--allow-unix-socket (network.allow_unix_sockets) is enforced on Linux only")
	}
	home, _ := os.UserHomeDir()
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		p := config.ExpandHome(e, home)
		fi, err := os.Stat(p)
		if err == nil && fi.Mode()&os.ModeSocket == 0 {
			err = fmt.Errorf("%s is not a unix socket", p)
		}
		if err != nil {
			return nil, usageErr("--allow-unix-socket: %w", cf.PathError("network.allow_unix_sockets", e, err))
		}
		out = append(out, p)
	}
	return out, nil
}
