//go:build !linux

package netroute

import "errors"

// DefaultViaLoopback fails: only Linux sandboxes use it.
func DefaultViaLoopback(netns string) error {
	return errors.New("netroute: default routes through the loopback are made only on Linux")
}
