package proxy

import (
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/policy"
)

// screen runs a requestFramer over the bytes net/http reads from one HTTP
// client, so that an ambiguously framed request is refused before anything
// of it is forwarded:
//
//   - in a request head, net/http gets the bytes before that head, its first
//     four bytes and then a read error, and answers 400 itself. While the
//     request before it is still being handled, a read (net/http's check for
//     a client going away) waits as on a quiet connection instead: failing
//     it would cancel that request;
//   - in a chunked body, net/http gets the bytes before the bad chunk line.
//     When the handler of that request has not forwarded anything yet it
//     answers 400 (bad-request) at once; otherwise reading the body fails,
//     the upstream gets a truncated request and the client 400 if it has
//     had no answer yet.
//
// Either way the connection is closed after the answer.
type screen struct {
	mu       sync.Mutex
	f        requestFramer
	served   int  // requests net/http has handed to the handler so far
	handling bool // the handler is running for request served
	reported bool // the ambiguity has been logged and recorded
}

func newScreen(maxHeaderBytes int) *screen {
	// net/http reads at most MaxHeaderBytes+4096 bytes for a head (431
	// beyond); a longer head needs no screening.
	return &screen{f: requestFramer{maxHead: maxHeaderBytes + 8192}}
}

// read is Read for a screened connection.
func (sc *screen) read(c *clientConn, p []byte) (int, error) {
	sc.mu.Lock()
	ferr, handling := sc.f.err, sc.handling
	sc.mu.Unlock()
	if ferr != nil {
		return sc.refuse(c, p, ferr, handling)
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		sc.mu.Lock()
		ok := sc.f.feed(p[:n])
		ferr, handling = sc.f.err, sc.handling
		sc.mu.Unlock()
		if ok < n {
			if ok == 0 {
				return sc.refuse(c, p, ferr, handling)
			}
			n, err = ok, nil
		}
	}
	return n, err
}

// refuse answers a read once the stream has reached an ambiguity.
func (sc *screen) refuse(c *clientConn, p []byte, ferr *framingError, handling bool) (int, error) {
	if !ferr.inBody && handling {
		for {
			// Discard what the client sends until net/http gives up on
			// this read or the client goes away.
			if _, err := c.Conn.Read(p); err != nil {
				return 0, err
			}
		}
	}
	if !ferr.inBody {
		sc.report(c, ferr)
	}
	return 0, ferr
}

// next is called by the handler for each request: it returns the
// ambiguity found in that request's body, if any yet. A nil screen finds
// none.
func (sc *screen) next() *framingError {
	if sc == nil {
		return nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.served++
	sc.handling = true
	return sc.current()
}

// done is called when the handler of a request returns.
func (sc *screen) done() {
	if sc == nil {
		return
	}
	sc.mu.Lock()
	sc.handling = false
	sc.mu.Unlock()
}

// failure returns the ambiguity found in the request being handled, if any.
func (sc *screen) failure() *framingError {
	if sc == nil {
		return nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.current()
}

func (sc *screen) current() *framingError {
	if e := sc.f.err; e != nil && e.request == sc.served {
		return e
	}
	return nil
}

// report logs and records an ambiguity in a request head once; net/http
// answers that request 400 itself. (The handler reports one in a body.)
func (sc *screen) report(c *clientConn, e *framingError) {
	sc.mu.Lock()
	done := sc.reported
	sc.reported = true
	sc.mu.Unlock()
	if done {
		return
	}
	s := c.s
	client := c.RemoteAddr().String()
	if e.head == "" {
		s.logf("proxy: refusing a request from %s: %v", client, e)
		return
	}
	s.logf("proxy: refusing %q from %s: %v", e.head, client, e)
	proto, host, port := targetOfRequestLine(e.head)
	if host == "" {
		return
	}
	now := time.Now()
	s.record(audit.Event{
		Time: now, Proto: proto, Client: client, Host: host, Port: port,
		Decision: audit.DecisionDeny, Reason: audit.ReasonBadRequest, Text: e.Error(),
	}, now)
}

// targetOfRequestLine finds the target a request line names (an
// absolute-form URL or a CONNECT authority), for the audit log.
func targetOfRequestLine(line string) (proto, host string, port uint16) {
	method, rest, _ := strings.Cut(line, " ")
	target, _, _ := strings.Cut(rest, " ")
	if method == "CONNECT" {
		h, p, err := net.SplitHostPort(target)
		if err != nil {
			return "", "", 0
		}
		n, err := policy.ParsePort(p)
		if err != nil {
			return "", "", 0
		}
		return "connect", h, n
	}
	u, err := url.Parse(target)
	if err != nil || !u.IsAbs() || u.Hostname() == "" {
		return "", "", 0
	}
	port = 80
	if p := u.Port(); p != "" {
		if port, err = policy.ParsePort(p); err != nil {
			return "", "", 0
		}
	}
	return "http", u.Hostname(), port
}

// clientConnKey carries the *clientConn of a request in its context.
type clientConnKey struct{}

// withClientConn is the HTTP server's ConnContext.
func withClientConn(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*clientConn); ok && cc.screen != nil {
		return context.WithValue(ctx, clientConnKey{}, cc)
	}
	return ctx
}

// screenOf returns the screen of the connection r came on, or nil.
func screenOf(ctx context.Context) *screen {
	if cc, ok := ctx.Value(clientConnKey{}).(*clientConn); ok {
		return cc.screen
	}
	return nil
}
