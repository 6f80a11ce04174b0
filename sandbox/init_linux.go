//go:build linux

package sandbox

import (
	"github.com/sandgate/sandgate/sandbox/internal/initproc"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// InitMain runs the sandbox's own process when args (a process's argv)
// say that Run re-executed this binary as one, and returns its exit
// status; ok is false for any other process. On Linux that process is the
// sandbox's PID-1 init.
func InitMain(args []string) (code int, ok bool) {
	if !initproto.IsInit(args) {
		return 0, false
	}
	return initproc.Main(args), true
}

// initNetwork is the init's name for a network mode.
func initNetwork(n Network) initproto.Network {
	switch n {
	case NetworkNone:
		return initproto.NetNone
	case NetworkFull:
		return initproto.NetFull
	}
	return initproto.NetProxy
}

// unixSockets is the init's list of allowed unix sockets: none when every
// unix socket is allowed.
func unixSockets(spec Spec) []string {
	if spec.AllowUnixSockets {
		return nil
	}
	return spec.UnixSockets
}
