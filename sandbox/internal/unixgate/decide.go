// Package unixgate decides and makes the connect(2) calls that a
// sandboxed command's seccomp filter hands to the sandbox's init when the
// run allows unix sockets by path (--allow-unix-socket PATH): a connection
// to one of the allowed sockets is made to the socket that was opened when
// the sandbox started (never to whatever the name means by then), one to
// any other unix address (path, abstract or unnamed) is refused, and one
// to any other family is made as asked.
//
// The decision (this file) is pure; the supervisor that reads the
// command's memory and connects its socket is in gate_linux.go.
package unixgate

import (
	"encoding/binary"
	"path"
)

// afUnix is AF_UNIX (the same on every Linux architecture).
const afUnix = 1

// Verdict is what the supervisor does with one connect(2).
type Verdict int

const (
	// PassOn: not a unix address; connect the socket as asked (the
	// network rules of the sandbox decide it).
	PassOn Verdict = iota
	// Allowed: the address names an allowed socket; connect to it.
	Allowed
	// Refused: a unix address that is not allowed (or malformed).
	Refused
)

// Decision is the outcome of Decide.
type Decision struct {
	Verdict Verdict
	// Index is the allowed socket's index (Allowed).
	Index int
	// Reason says why a Refused address was refused.
	Reason string
}

// Decide looks at the socket address sa that a command passed to
// connect(2) (its first len bytes, as the command gave them). A unix path
// is taken relative to cwd (which returns the command's working
// directory; called only for a relative path) and compared, made clean,
// with allowed (clean absolute paths). Abstract and unnamed unix addresses
// are refused.
func Decide(sa []byte, cwd func() (string, error), allowed []string) Decision {
	if len(sa) < 2 {
		return Decision{Verdict: Refused, Reason: "address too short"}
	}
	if binary.NativeEndian.Uint16(sa) != afUnix {
		return Decision{Verdict: PassOn}
	}
	p, ok, reason := unixPath(sa[2:])
	if !ok {
		return Decision{Verdict: Refused, Reason: reason}
	}
	if !path.IsAbs(p) {
		dir, err := cwd()
		if err != nil {
			return Decision{Verdict: Refused, Reason: "relative path " + p + " (working directory unknown: " + err.Error() + ")"}
		}
		p = path.Join(dir, p)
	}
	p = path.Clean(p)
	for i, a := range allowed {
		if a == p {
			return Decision{Verdict: Allowed, Index: i}
		}
	}
	return Decision{Verdict: Refused, Reason: p + " is not an allowed unix socket"}
}

// unixPath returns the path of sun_path b: up to the first NUL, as the
// kernel reads it. An empty b (unnamed) or one starting with NUL
// (abstract) is no path.
func unixPath(b []byte) (string, bool, string) {
	if len(b) == 0 || b[0] == 0 {
		if len(b) == 0 {
			return "", false, "unnamed unix address"
		}
		return "", false, "abstract unix socket"
	}
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	return string(b), true, ""
}
