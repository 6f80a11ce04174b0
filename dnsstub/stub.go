// Package dnsstub is the resolver a sandboxed command sees: a small DNS
// server that answers from the policy and a synthaddr.Pool alone and never
// talks to another resolver. The real lookup of an allowed name happens
// later, when the transparent TCP path dials the name a synthetic address
// stands for; a name the policy refuses is therefore never looked up at all.
//
// # Answers
//
// The server takes one question per query, class IN, opcode QUERY:
//
//   - A, AAAA and ANY for a name the policy allows: the name's synthetic
//     addresses (ANY gets both), TTL Config.TTL. AAAA is NODATA when the
//     pool has no IPv6 range.
//   - HTTPS and SVCB for an allowed name: NODATA (NOERROR, no records), so
//     that clients fall back to A/AAAA. Such records could carry address
//     hints and ECH keys for other hosts, and answering them would need an
//     upstream lookup. This is an answer, not a refusal, and is not
//     reported.
//   - Any other type (TXT, MX, SRV, CNAME, NS, SOA, CAA, ...) for an allowed
//     name: REFUSED, reported with ReasonTypeNotServed. Answering them would
//     need an upstream lookup, which would make the resolver a channel out
//     of the sandbox.
//   - A name the policy refuses, any type: NXDOMAIN, reported with the
//     policy's reason. NXDOMAIN rather than REFUSED because stub resolvers
//     stop at once with "name not known" on NXDOMAIN, while REFUSED makes
//     glibc and Go try again and then report a temporary failure, which
//     some tools retry for a long time.
//   - An invalid name (not already in the form policy.NormalizeName gives
//     after lower-casing: non-ASCII bytes, numeric last label, ...):
//     NXDOMAIN, reported with policy.ReasonInvalidHost or
//     policy.ReasonNumericName.
//   - "localhost" and names under ".localhost" (RFC 6761): 127.0.0.1 and ::1,
//     the sandbox's own loopback, without asking the policy; other types as
//     for allowed names.
//   - PTR under in-addr.arpa or ip6.arpa: the name of a live synthetic
//     address, "localhost" for a loopback address, and NXDOMAIN (reported
//     with ReasonReverseUnknown) for anything else.
//   - Another opcode: NOTIMP; another class: REFUSED; both reported.
//   - The range is full (synthaddr.ErrExhausted): SERVFAIL, reported with
//     ReasonExhausted.
//   - A malformed query (bad names, compression loops, more than one
//     question, trailing garbage in a section, two OPT records, oversized):
//     FORMERR when the 12-byte header could be read, otherwise no reply;
//     reported with ReasonMalformed. A packet with the response bit set is
//     dropped, so two servers cannot be made to talk to each other.
//
// EDNS(0) is understood: a query with an OPT record gets one back
// (payload size 1232, BADVERS for a version other than 0), and a UDP answer
// larger than the client's payload size (512 bytes without EDNS) is sent
// truncated (TC set, no records) so that the client retries over TCP.
//
// # Serving
//
// ServeUDP runs a fixed number of workers on one socket, so a flood of
// queries costs a bounded number of goroutines and the kernel drops what
// does not fit. ServeTCP bounds the number of connections and gives each
// query Config.TCPIdleTimeout to arrive whole (a slow or stalled client is
// dropped, and never holds up another). A Server answers from memory only,
// so one query takes microseconds; Config.Report must not block for long.
package dnsstub

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sandgate/sandgate/synthaddr"
)

// Policy is the question the stub asks about a name. name is normalised as
// policy.NormalizeName returns it (lower case, ASCII, no trailing dot). The
// port is unknown when a name is resolved, so Allowed should report whether
// the policy allows the name on some port. reason is a machine-readable code
// (such as "not-allowed" or "denied") used when ok is false.
type Policy interface {
	Allowed(name string) (ok bool, reason string)
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(name string) (ok bool, reason string)

// Allowed calls f.
func (f PolicyFunc) Allowed(name string) (bool, string) { return f(name) }

// Reasons the stub gives in a Refusal besides the policy's own.
const (
	ReasonTypeNotServed   = "dns-type-not-served"       // a record type other than A, AAAA, ANY, HTTPS, SVCB (PTR only in reverse zones)
	ReasonClassNotServed  = "dns-class-not-served"      // a class other than IN
	ReasonOpcodeNotServed = "dns-opcode-not-served"     // an opcode other than QUERY
	ReasonReverseUnknown  = "dns-reverse-unknown"       // PTR for an address that is neither synthetic nor loopback
	ReasonBadVersion      = "dns-bad-edns-version"      // EDNS version other than 0
	ReasonMalformed       = "dns-malformed"             // the query could not be parsed
	ReasonExhausted       = "synthetic-range-exhausted" // no synthetic address was free
)

// Refusal describes one query the stub did not answer with data.
type Refusal struct {
	Transport string // "udp" or "tcp"
	Client    string // the client's address
	Name      string // the question name, lower-cased, without the trailing dot ("" if none could be read)
	Type      string // the question type: "A", "TXT", "TYPE65535", ... ("" if none could be read)
	RCode     string // the answer sent: "NXDOMAIN", "REFUSED", "SERVFAIL", "FORMERR", "NOTIMP", "BADVERS", or "" when none was sent
	Reason    string // the policy's reason, or one of the Reason constants
}

// Defaults for Config.
const (
	DefaultTTL            = 5 * time.Second
	DefaultUDPWorkers     = 4
	DefaultMaxTCPConns    = 32
	DefaultTCPIdleTimeout = 10 * time.Second
)

// maxQuery is the largest query accepted; real queries are a few hundred
// bytes.
const maxQuery = 4096

// Config describes a Server. Policy and Pool are required.
type Config struct {
	Policy         Policy
	Pool           *synthaddr.Pool
	Report         func(Refusal) // called for every refusal, from the serving goroutines; nil means only count them
	TTL            time.Duration // TTL of synthetic answers; 0 means DefaultTTL
	UDPWorkers     int           // goroutines reading the UDP socket; 0 means DefaultUDPWorkers
	MaxTCPConns    int           // TCP connections served at once (more are closed at once); 0 means DefaultMaxTCPConns
	TCPIdleTimeout time.Duration // how long a TCP connection may take to deliver its next whole query; 0 means DefaultTCPIdleTimeout
}

// Stats counts a server's work.
type Stats struct {
	Queries  uint64 // messages received (UDP datagrams and TCP messages)
	Answered uint64 // replies with NOERROR (with records or NODATA)
	Refused  uint64 // refusals reported (malformed ones included)
}

// Server is a DNS stub. It is safe for concurrent use, and one Server may
// serve any number of sockets.
type Server struct {
	cfg   Config
	ttl   uint32
	stats struct{ queries, answered, refused atomic.Uint64 }
}

// New makes a server from c.
func New(c Config) (*Server, error) {
	if c.Policy == nil || c.Pool == nil {
		return nil, errors.New("dns stub: Policy and Pool are required")
	}
	if c.TTL < 0 || c.UDPWorkers < 0 || c.MaxTCPConns < 0 || c.TCPIdleTimeout < 0 {
		return nil, fmt.Errorf("dns stub: negative setting in %+v", c)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.UDPWorkers == 0 {
		c.UDPWorkers = DefaultUDPWorkers
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.TCPIdleTimeout == 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	ttl := c.TTL / time.Second
	if ttl < 1 {
		ttl = 1
	}
	return &Server{cfg: c, ttl: uint32(min(ttl, 3600))}, nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{Queries: s.stats.queries.Load(), Answered: s.stats.answered.Load(), Refused: s.stats.refused.Load()}
}

// report counts a refusal and passes it on.
func (s *Server) report(r Refusal) {
	s.stats.refused.Add(1)
	if s.cfg.Report != nil {
		s.cfg.Report(r)
	}
}
