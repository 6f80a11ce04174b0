//go:build !linux

package origdst

import (
	"net"
	"net/netip"
)

// Of fails with ErrUnsupported: only Linux knows the original destination
// of a redirected connection.
func Of(c net.Conn) (netip.AddrPort, error) { return netip.AddrPort{}, ErrUnsupported }
