//go:build linux

package initproc

import (
	"sync"

	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// networkSetup is what setupNetwork made: the proxy's listener ports and
// every descriptor to hand to the parent, or why it failed.
type networkSetup struct {
	httpPort, socksPort int
	fds                 []int
	err                 error
}

// startNetwork sets the sandbox's network up (setupNetwork of a copy of
// cfg) on a goroutine of its own and returns a function that waits for
// it and returns the result (the same result however often it is called).
//
// The init's main thread is locked (its credentials are CMD's); the
// network's netlink exchanges (nftables, routes) park and wake their
// goroutine many times, which on a locked thread costs a hand-over of
// the thread each time. On an ordinary goroutine they also run alongside
// the main thread's mounts (the replacement files, the view, /proc), on
// the other CPU. Nothing of the network depends on the mounts: both
// namespaces belong to the whole process, every thread has the init's
// capabilities until the lock-down, which waits for the network. The
// network starts first because the transparent path's nftables
// transaction leaves kernel work that the last close of its socket waits
// for (see nftfw.ApplySandboxCounters): the sooner it is committed, the
// more of that runs alongside the rest of the start-up.
func startNetwork(cfg initproto.Config) func() networkSetup {
	done := make(chan networkSetup, 1)
	go func() {
		var n networkSetup
		n.httpPort, n.socksPort, n.fds, n.err = setupNetwork(cfg)
		done <- n
	}()
	return sync.OnceValue(func() networkSetup { return <-done })
}
