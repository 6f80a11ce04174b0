// Package decide holds the run-time decision about a destination that is not
// on the allow list: the Question put to a Decider, its Answer, and the
// deciders sandgate ships (an HTTP or unix-socket service, a terminal prompt,
// a plain function). Any error, timeout or malformed answer is a deny; no
// decider path ever allows by default.
package decide

import (
	"context"
	"strconv"
)

// Scopes of an allowing Answer.
const (
	ScopeOnce = "once" // this connection only
	ScopeRun  = "run"  // this destination for the rest of the run
)

// Question describes one held connection to a destination that is merely
// not on the allow list.
type Question struct {
	Run      string // the run id ("" outside a run)
	Protocol string // "connect", "http", "socks5" or "transparent"
	Host     string // the normalised host name or address literal
	Port     uint16
	Method   string // the HTTP method when the request was inspected
	Path     string // the HTTP path when the request was inspected
}

// String returns "host:port" of the question.
func (q Question) String() string {
	if q.Host != "" && q.Host[0] != '[' && containsColon(q.Host) {
		return "[" + q.Host + "]:" + strconv.Itoa(int(q.Port))
	}
	return q.Host + ":" + strconv.Itoa(int(q.Port))
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// Answer is a Decider's verdict. Scope matters only when Allow is true; an
// empty Scope means ScopeOnce.
type Answer struct {
	Allow bool
	Scope string // ScopeOnce or ScopeRun
}

// Decider decides about a Question. An error is a deny.
type Decider interface {
	Decide(ctx context.Context, q Question) (Answer, error)
}

// Func adapts a function to Decider.
type Func func(ctx context.Context, q Question) (Answer, error)

// Decide calls f.
func (f Func) Decide(ctx context.Context, q Question) (Answer, error) { return f(ctx, q) }

type requestKey struct{}

// request is what a proxy knows about a connection before the gate decides.
type request struct {
	protocol, method, path string
}

// WithRequest returns ctx carrying the protocol and, for an inspected HTTP
// request, its method and path, so that the gate can put them in a Question.
func WithRequest(ctx context.Context, protocol, method, path string) context.Context {
	return context.WithValue(ctx, requestKey{}, request{protocol, method, path})
}

// RequestFrom returns what WithRequest stored in ctx (empty strings when
// nothing was).
func RequestFrom(ctx context.Context) (protocol, method, path string) {
	r, _ := ctx.Value(requestKey{}).(request)
	return r.protocol, r.method, r.path
}
