// Package proxy serves sandgate's HTTP/1.1 forward proxy and SOCKS5 proxy.
// Every request is decided by an egress.Gate and recorded as an audit.Event;
// allowed tunnels move bytes with the kernel's zero-copy splice path.
//
// HTTP: absolute-form requests (GET http://host:port/path, any method) are
// forwarded, and CONNECT host:port opens a tunnel. The target is always the
// request URI or the CONNECT authority, never the Host header; the forwarded
// request carries a Host header naming that same target. Origin-form
// requests and https:// URLs (which need CONNECT) get 400. Every request on a
// keep-alive connection is decided anew, and each forwarded request uses its
// own upstream connection, dialled by the gate for that request.
//
// Answers: a refusal is 403 with X-Proxy-Error blocked-by-allowlist,
// blocked-by-denylist or blocked-by-address and the decision's text as the
// body; an allowed name whose lookup failed is 502 with X-Proxy-Error
// resolve-failed; a failed connection is 502 (dial-failed), or 504 when it
// timed out (dial-timeout); an upstream whose whole response head has not
// arrived ResponseHeadTimeout after the request is 504 (upstream-timeout). SOCKS5 answers reply 2 for a refusal, 4 for a
// lookup failure or time-out, 5 for a refused connection, 3 for an
// unreachable network, 7 for BIND and UDP ASSOCIATE, and 8 for an unknown
// address type.
//
// Inspected hosts: for a host the policy decides request by request
// (method and path rules, --inspect) or a Secrets binds, plain-HTTP
// requests are decided one by one (403 with X-Proxy-Error
// blocked-by-method or blocked-by-path), and a CONNECT, SOCKS5 or
// transparent connection is handed to package inspect with the run's
// Options.Authority instead of being spliced; without an Authority it is
// refused (inspect-unavailable), never passed through. Every other host's
// tunnel stays TLS end to end. A request carrying a secret's placeholder
// to a host the secret is not bound to is 403 secret-not-bound.
//
// Framing: the bytes of an HTTP client pass a screen (requestFramer) before
// net/http parses them, and a request whose framing two parsers could read
// differently (Content-Length with Transfer-Encoding, repeated or odd
// Content-Length, Transfer-Encoding other than chunked, folded lines, bare
// CR or LF, bad chunk sizes, ...) is answered 400 before anything of it is
// forwarded, and the connection closed. A CONNECT that does not become a
// tunnel closes the connection too, since the bytes after its head are not
// screened.
//
// Audit: every decision about a named target is an event. Refusals are
// recorded at once, allowed requests and tunnels when they end (with the
// body or tunnel bytes moved each way). Requests that name no usable target
// are answered but not recorded; requests that name a host but are
// malformed are recorded with reason "bad-request", and requests without the
// right credentials with "auth-failed".
//
// Tunnels: after the handshake each direction waits for data without
// holding a pipe or a buffer, then moves what there is: with splice(2)
// between two TCP sockets on Linux, through a pipe of a bounded pool that is
// given back after each burst (idle pipes are closed within three seconds), or
// through a pooled buffer when no pipe is free or on other systems. An idle
// tunnel costs two parked goroutines and about a kilobyte of heap.
//
// Descriptors: New raises the soft RLIMIT_NOFILE to the hard limit and fits
// MaxConns to it (saying so through Logf when it lowers it), counting every
// descriptor a connection can hold (client, upstream) and bounding the other
// holders (splice pipes, DNS lookups, refusals), so serving never meets
// EMFILE. A client over the limit gets 503 (HTTP) or a general-failure reply
// (SOCKS5) and the open connections go on working. The plan assumes the
// Server is the main user of descriptors in its process.
package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/inspect"
	"github.com/sandgate/sandgate/policy"
)

// Credentials, when set on a listener, must be presented by clients
// (Proxy-Authorization: Basic for HTTP, RFC 1929 for SOCKS5).
type Credentials struct {
	User     string
	Password string
}

// Limits bound the resources one server uses. Zero fields take the defaults.
type Limits struct {
	MaxHeaderBytes int           // default 64 KiB: request line + headers (HTTP), whole request (SOCKS)
	HeaderTimeout  time.Duration // default 10s: time allowed to send a request's head
	DialTimeout    time.Duration // default 10s (passed to the gate when it has none)
	IdleTimeout    time.Duration // default 5m: a tunnel or keep-alive connection with no traffic either way is closed
	MaxConns       int           // default 8192: concurrent client connections; more are refused promptly

	// ResponseHeadTimeout (default 60s) bounds the wait for an upstream's
	// whole response head once the request has been sent, however the head
	// trickles in; the client then gets 504 with X-Proxy-Error
	// upstream-timeout.
	ResponseHeadTimeout time.Duration
}

// Default limits, used for zero fields of Limits.
const (
	DefaultMaxHeaderBytes = 64 << 10
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultDialTimeout    = 10 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultMaxConns       = 8192

	DefaultResponseHeadTimeout = 60 * time.Second
)

// WithDefaults returns l with every zero (or negative) field replaced by its
// default.
func (l Limits) WithDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.HeaderTimeout <= 0 {
		l.HeaderTimeout = DefaultHeaderTimeout
	}
	if l.DialTimeout <= 0 {
		l.DialTimeout = DefaultDialTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.ResponseHeadTimeout <= 0 {
		l.ResponseHeadTimeout = DefaultResponseHeadTimeout
	}
	return l
}

// Options configure a Server.
type Options struct {
	Gate        *egress.Gate
	Audit       audit.Sink   // nil records nothing
	Credentials *Credentials // nil: no authentication
	Limits      Limits
	Logf        func(format string, args ...any) // nil: silent

	// Authority signs the certificates CMD sees for inspected hosts (those
	// the policy decides request by request, or a secret is bound to).
	// nil: a connection to such a host is refused (reason
	// inspect-unavailable), never passed through uninspected.
	Authority *inspect.Authority
	// UpstreamRoots verifies inspected hosts' certificates; nil means the
	// system pool.
	UpstreamRoots *x509.CertPool
	// Secrets, when set, rewrites (or refuses) inspected and plain-HTTP
	// requests that carry a secret's placeholder.
	Secrets Secrets
}

// Server serves both protocols; one Server may serve many listeners.
type Server struct {
	gate *egress.Gate
	sink audit.Sink
	lim  Limits
	logf func(format string, args ...any)

	authority *inspect.Authority
	roots     *x509.CertPool
	secrets   Secrets

	// Credentials, kept as digests so comparisons take constant time.
	authOn   bool
	userHash [sha256.Size]byte
	passHash [sha256.Size]byte

	httpSrv    *http.Server
	transport  *http.Transport
	pipes      *pipePool     // splice pipes of the tunnels
	refusals   chan struct{} // polite refusals in flight (a semaphore)
	refusalLog refusalLog

	baseCtx    context.Context // cancelled when Shutdown gives up waiting
	cancelBase context.CancelFunc
	stopLive   func() // ends the watch of the gate's live policy (cut.go)

	active atomic.Int64 // open client connections, both protocols

	mu        sync.Mutex
	listeners map[net.Listener]struct{} // SOCKS listeners
	conns     map[io.Closer]struct{}    // SOCKS connections and tunnels
	shutting  bool                      // Shutdown has begun: accept nothing new
	forced    bool                      // Shutdown stopped waiting and closed everything
	changed   chan struct{}             // closed when conns shrinks, while Shutdown waits
}

// New returns a Server; it does not listen.
func New(opts Options) *Server {
	s := &Server{
		sink:      opts.Audit,
		lim:       opts.Limits.WithDefaults(),
		logf:      opts.Logf,
		authority: opts.Authority,
		roots:     opts.UpstreamRoots,
		secrets:   opts.Secrets,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[io.Closer]struct{}),
	}
	if opts.Gate != nil {
		// A copy, so that the DialTimeout default and the lookup bound
		// reach the gate without changing the caller's Gate.
		g := *opts.Gate
		if g.DialTimeout <= 0 {
			g.DialTimeout = s.lim.DialTimeout
		}
		s.gate = &g
	}
	if s.sink == nil {
		s.sink = audit.Multi()
	}
	s.watchLive()
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if c := opts.Credentials; c != nil {
		s.authOn = true
		s.userHash = sha256.Sum256([]byte(c.User))
		s.passHash = sha256.Sum256([]byte(c.Password))
	}
	plan := s.planDescriptors()
	s.pipes = newPipePool(plan.pipes, defaultPipeTrim)
	s.refusals = make(chan struct{}, plan.refusals)
	if s.gate != nil {
		s.gate.Resolver = egress.LimitLookups(s.gate.Resolver, plan.lookups)
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.httpSrv = &http.Server{
		Handler:                      http.HandlerFunc(s.handleHTTP),
		ReadHeaderTimeout:            s.lim.HeaderTimeout,
		IdleTimeout:                  s.lim.IdleTimeout,
		MaxHeaderBytes:               s.lim.MaxHeaderBytes,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     log.New(logWriter{s.logf}, "", 0),
		BaseContext:                  func(net.Listener) context.Context { return s.baseCtx },
		ConnContext:                  withClientConn,
	}
	s.transport = newForwardTransport(s.lim.ResponseHeadTimeout)
	return s
}

// planDescriptors fits MaxConns to the process's descriptor limit (raising
// the soft limit first) and sizes the pools; it says so when it lowers
// MaxConns.
func (s *Server) planDescriptors() fdPlan {
	limit, open, err := descriptorLimit()
	if err != nil {
		s.logf("proxy: %v; max_conns %d is not checked against it", err, s.lim.MaxConns)
	}
	plan := planFDs(limit, open, s.lim.MaxConns)
	if plan.lowered {
		s.logf("proxy: lowering max_conns from %d to %d to fit the descriptor limit of %d "+
			"(%d open; each connection can hold %d, splice pipes up to %d, DNS lookups up to %d)",
			s.lim.MaxConns, plan.conns, limit, open, fdsPerConn, fdsPerPipe*plan.pipes, fdsPerLookup*plan.lookups)
		s.lim.MaxConns = plan.conns
	}
	return plan
}

// Limits returns the limits in force: Options.Limits with the defaults
// filled in and MaxConns fitted to the descriptor limit.
func (s *Server) Limits() Limits { return s.lim }

// Stats is a snapshot of what a Server holds.
type Stats struct {
	Conns     int // client connections holding a MaxConns slot
	Pipes     int // splice pipes open, in use or idle
	IdlePipes int // of those, idle in the pool
	MaxPipes  int // the pool's bound (0 where tunnels do not splice)
}

// Stats returns what the Server holds now.
func (s *Server) Stats() Stats {
	open, idle := s.pipes.stats()
	return Stats{Conns: int(s.active.Load()), Pipes: open, IdlePipes: idle, MaxPipes: s.pipes.bound()}
}

// logWriter turns net/http's log lines into Logf calls.
type logWriter struct{ logf func(string, ...any) }

func (w logWriter) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.logf("proxy: %s", msg)
	return len(p), nil
}

// ServeHTTP accepts HTTP proxy clients on ln until ln is closed or Shutdown is
// called. It returns nil after Shutdown.
func (s *Server) ServeHTTP(ln net.Listener) error {
	if s.isShutting() {
		ln.Close()
		return nil
	}
	err := s.httpSrv.Serve(&limitListener{Listener: ln, s: s})
	if errors.Is(err, http.ErrServerClosed) || s.isShutting() {
		return nil
	}
	return fmt.Errorf("proxy: serve HTTP on %s: %w", ln.Addr(), err)
}

// ServeSOCKS accepts SOCKS5 clients on ln until ln is closed or Shutdown is
// called. It returns nil after Shutdown.
func (s *Server) ServeSOCKS(ln net.Listener) error {
	return s.acceptLoop(ln, "SOCKS", func(c net.Conn) { s.refuse(c, true) }, s.serveSOCKS)
}

// acceptLoop accepts connections on ln until ln is closed or Shutdown is
// called (then it returns nil), with ln registered so that Shutdown closes
// it. Each connection takes a MaxConns slot (busy answers one that finds
// none) and is handed, tracked, to serve in a goroutine of its own.
func (s *Server) acceptLoop(ln net.Listener, what string, busy func(net.Conn), serve func(*clientConn)) error {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isShutting() {
				return nil
			}
			if isTemporary(err) {
				backoff = nextBackoff(backoff)
				s.logf("proxy: accept %s on %s: %v; retrying in %v", what, ln.Addr(), err, backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("proxy: serve %s on %s: %w", what, ln.Addr(), err)
		}
		backoff = 0
		if !s.acquire() {
			busy(c)
			continue
		}
		cc := &clientConn{Conn: c, s: s}
		if !s.track(cc, true) {
			cc.Close()
			return nil
		}
		go serve(cc)
	}
}

// Shutdown closes the listeners and waits for open connections to finish or
// for ctx to end, after which it closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.endLiveWatch()
	s.mu.Lock()
	s.shutting = true
	lns := make([]net.Listener, 0, len(s.listeners))
	for ln := range s.listeners {
		lns = append(lns, ln)
	}
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}

	// In-flight HTTP requests first: a CONNECT being answered becomes a
	// tracked tunnel before its handler returns.
	if err := s.httpSrv.Shutdown(ctx); err != nil {
		s.forceClose()
		return fmt.Errorf("proxy: shutdown: %w", err)
	}
	for {
		s.mu.Lock()
		n := len(s.conns)
		if n > 0 && s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		if n == 0 {
			s.cancelBase()
			s.pipes.close()
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			s.forceClose()
			return fmt.Errorf("proxy: shutdown: closed %d open connections: %w", n, ctx.Err())
		}
	}
}

// forceClose closes every tracked connection and every HTTP connection.
func (s *Server) forceClose() {
	s.mu.Lock()
	s.forced = true
	cs := make([]io.Closer, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	s.cancelBase()
	s.httpSrv.Close()
	for _, c := range cs {
		c.Close()
	}
	s.pipes.close()
}

func (s *Server) isShutting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutting
}

// track registers c so that Shutdown waits for it and can close it. A newly
// accepted connection is refused once Shutdown has begun; a connection that
// turns into a tunnel is refused only after Shutdown gave up waiting.
func (s *Server) track(c io.Closer, fresh bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forced || (fresh && s.shutting) {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// acquire takes one of the MaxConns client connection slots.
func (s *Server) acquire() bool {
	if s.active.Add(1) > int64(s.lim.MaxConns) {
		s.active.Add(-1)
		return false
	}
	return true
}

func (s *Server) release() { s.active.Add(-1) }

// clientConn is an accepted client connection holding a MaxConns slot, which
// it gives back when closed. An HTTP client's bytes pass a screen for
// ambiguous framing on their way to net/http.
type clientConn struct {
	net.Conn
	s      *Server
	screen *screen // nil for SOCKS clients
	once   sync.Once
}

// Read reads through the screen when there is one.
func (c *clientConn) Read(p []byte) (int, error) {
	if c.screen == nil {
		return c.Conn.Read(p)
	}
	return c.screen.read(c, p)
}

// Close closes the connection and releases its slot once.
func (c *clientConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.s.release)
	return err
}

// limitListener enforces MaxConns for the HTTP server: excess connections get
// a 503 (see refuse) without reaching net/http.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.acquire() {
			return &clientConn{Conn: c, s: l.s, screen: newScreen(l.s.lim.MaxHeaderBytes)}, nil
		}
		l.s.refuse(c, false)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	if d *= 2; d > time.Second {
		d = time.Second
	}
	return d
}

// authorized compares a presented user and password with the configured
// credentials in constant time. Without configured credentials anything
// passes.
func (s *Server) authorized(user, pass string) bool {
	if !s.authOn {
		return true
	}
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	okUser := subtle.ConstantTimeCompare(u[:], s.userHash[:])
	okPass := subtle.ConstantTimeCompare(p[:], s.passHash[:])
	return okUser&okPass == 1
}

// connect asks the gate to decide on and dial host:port. Without a gate
// everything is refused.
func (s *Server) connect(ctx context.Context, host string, port uint16) (net.Conn, egress.Result, netip.AddrPort, error) {
	if s.gate == nil {
		return nil, egress.Result{Decision: policy.Decision{
			Block:  policy.BlockAllowlist,
			Reason: policy.ReasonNotAllowed,
			Text:   "sandgate has no policy configured, so nothing is allowed",
		}}, netip.AddrPort{}, nil
	}
	return s.gate.Connect(ctx, host, port)
}

// event starts an audit event for a decision about host:port.
func event(proto, client, host string, port uint16, res egress.Result, dialed netip.AddrPort) audit.Event {
	e := audit.Event{
		Time:   time.Now(),
		Proto:  proto,
		Client: client,
		Host:   host,
		Port:   port,
		Reason: res.Decision.Reason,
		Text:   res.Decision.AuditText(), // the client gets Text only
		Gen:    res.Gen,
	}
	if res.Target.Host != "" {
		e.Host = res.Target.Host
	}
	if dialed.IsValid() {
		e.Dialed = dialed.String()
	}
	if res.Decision.Allow {
		e.Decision = audit.DecisionAllow
	} else {
		e.Decision = audit.DecisionDeny
	}
	return e
}

// record finishes e with its duration and hands it to the sink.
func (s *Server) record(e audit.Event, start time.Time) {
	e.Duration = float64(time.Since(start)) / float64(time.Millisecond)
	s.sink.Record(s.redact(e))
}

// blockCode is the X-Proxy-Error value for a refusal.
func blockCode(b policy.Block) string {
	switch b {
	case policy.BlockDenylist:
		return "blocked-by-denylist"
	case policy.BlockAddress:
		return "blocked-by-address"
	case policy.BlockMethod:
		return policy.ReasonBlockedByMethod
	case policy.BlockPath:
		return policy.ReasonBlockedByPath
	default:
		return "blocked-by-allowlist"
	}
}

// isTimeout reports whether err is a timeout of any kind.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
