// Package netroute gives a sandbox's network namespace the routes the
// transparent path needs. A namespace with only its loopback has no route
// to any other address, so connect() to one fails with ENETUNREACH before
// any nftables rule sees a packet; with a default route through the
// loopback device, the first packet of a connection reaches the nat output
// hook, where sandgate's rules redirect it to the transparent listener (and
// refuse what they do not redirect). Nothing ever leaves through that
// route: the loopback device delivers only to its own namespace, and a
// packet for an address the namespace does not have is dropped there.
//
// No other device is needed (the dummy driver, for one, is not built into
// every kernel). The IPv4 route names 127.0.0.1 as the preferred source, so
// that connections come from 127.0.0.1 rather than 0.0.0.0.
//
// Only Linux has it; elsewhere DefaultViaLoopback fails.
package netroute
