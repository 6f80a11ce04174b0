// Package origdst reads where a TCP connection was going before nftables
// redirected it to a local listener: the original destination that the
// kernel's connection tracking remembers (SO_ORIGINAL_DST for IPv4,
// IP6T_SO_ORIGINAL_DST for IPv6). sandgate's transparent listener calls Of
// on every connection it accepts.
//
// Only Linux has it; elsewhere Of fails with ErrUnsupported.
package origdst

import "errors"

var (
	// ErrNotRedirected means the connection came to the listener
	// itself: connection tracking knows no other destination for it.
	ErrNotRedirected = errors.New("origdst: the connection was not redirected")
	// ErrUnsupported means this system cannot tell a connection's
	// original destination.
	ErrUnsupported = errors.New("origdst: original destinations are known only on Linux")
)
