// Package inspect terminates TLS for hosts whose requests are decided one
// by one (inspected hosts) and forwards each allowed request to the real
// host over a freshly verified TLS connection.
//
// An Authority is the run's CA, made in memory at start; its key never
// leaves the process. Serve takes the client side of a tunnel (after a
// CONNECT, a SOCKS5 CONNECT or a transparent redirect) and the target
// host:port. When the first bytes are a TLS ClientHello, its server name
// must be the target (case-insensitive, trailing dot ignored), else the
// handshake is refused (reason "sni-mismatch"); the client then gets a leaf
// certificate for the host signed by the Authority, with ALPN h2 and
// http/1.1. When the first bytes are an HTTP/1.x request head, the requests
// are served in plain text and forwarded in plain text. Anything else is
// refused ("inspect-unknown-protocol").
//
// Every request must name the target in its Host (or :authority), else 421
// with X-Proxy-Error host-mismatch. It is then decided by Config.Check
// (refused: 403 with X-Proxy-Error blocked-by-method or blocked-by-path),
// passed to Config.Rewrite (an error: 403 secret-not-bound), and forwarded
// upstream through httputil.ReverseProxy. Upstream TLS is verified against
// Config.RootCAs (nil: the system pool) with the target as server name and
// ALPN h2 and http/1.1; a verification failure is 502 with X-Proxy-Error
// upstream-tls and the reason in the body. Trailers and WebSocket upgrades
// (decided as GET + path, then relayed both ways) pass. Each request is
// reported to Config.Record as an audit.Event carrying method and path.
package inspect
