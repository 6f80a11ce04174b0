//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitReadable blocks until c has data, EOF or an error pending, or until
// its read deadline passes, without reading anything. It lets a tunnel wait
// while idle without holding a splice pipe or a copy buffer. Connections that
// expose no file descriptor return at once.
func waitReadable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc.Read(func(fd uintptr) bool {
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds[:], 0)
		if err != nil {
			// Let the copy that follows meet and report the problem.
			return true
		}
		return n > 0
	})
}
