//go:build !linux

package proxy

import (
	"net"
	"time"
)

// pipePool is empty where there is no splice(2): tunnels copy through
// buffers.
type pipePool struct{}

const defaultPipeTrim = 2 * time.Second

func newPipePool(int, time.Duration) *pipePool { return &pipePool{} }

func (*pipePool) close() {}

func (*pipePool) stats() (open, idle int) { return 0, 0 }

func (*pipePool) bound() int { return 0 }

// splicer never splices here.
type splicer struct{}

func newSplicer(*pipePool, net.Conn, net.Conn) *splicer { return nil }

func (*splicer) burst(net.Conn, time.Duration, func(int64)) (bool, error) { return false, nil }
