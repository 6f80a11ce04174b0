//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package proxy

import "net"

// waitReadable returns at once on systems without poll(2); the tunnel's copy
// then waits for data itself.
func waitReadable(net.Conn) error { return nil }
