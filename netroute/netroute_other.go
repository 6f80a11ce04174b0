//go:build !linux

package netroute

import (
	"errors"
	"net/netip"
)

// DefaultViaLoopback fails: only Linux sandboxes use it.
func DefaultViaLoopback(netns string) error {
	return errors.New("netroute: default routes through the loopback are made only on Linux")
}

// AddToLoopback fails: only Linux sandboxes use it.
func AddToLoopback(netns string, addrs ...netip.Addr) error {
	return errors.New("netroute: addresses on the loopback are added only on Linux")
}
