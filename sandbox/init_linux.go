//go:build linux

package sandbox

import (
	"os"

	"github.com/sandgate/sandgate/sandbox/internal/initproc"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// MaybeInit must be called first thing in main (and in TestMain of tests
// that run sandboxes with the test binary as Spec.Executable). When this
// process was re-executed by Run as a sandbox's init it runs the init and
// exits; otherwise it returns at once.
func MaybeInit() {
	if initproto.IsInit(os.Args) {
		os.Exit(initproc.Main(os.Args))
	}
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
