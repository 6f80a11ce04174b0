package inspect

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/tlspeek"
)

// Audit reasons of the interceptor.
const (
	ReasonSNIMismatch     = "sni-mismatch"             // the ClientHello named another host
	ReasonUnknownProtocol = "inspect-unknown-protocol" // the first bytes were neither TLS nor HTTP/1.x
	ReasonHostMismatch    = "host-mismatch"            // a request's Host named another host
	ReasonUpstreamTLS     = "upstream-tls"             // the upstream's certificate did not verify
	ReasonSecretNotBound  = "secret-not-bound"         // Rewrite refused the request
	ReasonBadPath         = "bad-path"                 // a path with dot segments or encoded separators
	ReasonHandshake       = "tls-handshake-failed"     // the client's TLS handshake failed
)

// Config is what Serve needs for one client connection.
type Config struct {
	// Authority signs the leaf certificate for Host. Required.
	Authority *Authority
	// Host and Port are the tunnel's target.
	Host string
	Port uint16
	// Check decides each request by method and path (escaped, as sent,
	// with "?query" when there is one). Required.
	Check func(method, path string) policy.Decision
	// Rewrite, when set, may change an allowed request before it is
	// forwarded; an error refuses it (403 secret-not-bound).
	Rewrite func(host string, r *http.Request) error
	// Response, when set, may change an upstream's response (its header
	// and body; not a 101's) before the client gets it; an error answers
	// 502 instead.
	Response func(resp *http.Response) error
	// First is an upstream connection already dialled to the target (by
	// the egress gate); it carries the first upstream exchange. May be nil.
	First net.Conn
	// Dial opens further upstream connections to the target. Required.
	Dial func(ctx context.Context) (net.Conn, error)
	// RootCAs verifies upstream certificates; nil uses the system pool.
	RootCAs *x509.CertPool
	// Event is the template of every audit event (Proto, Client, Dialed).
	Event audit.Event
	// Record receives one event per request and per refused connection.
	Record func(audit.Event)
	// HeaderTimeout bounds the first bytes, the handshake and each request
	// head (default 10s); IdleTimeout closes a connection idle between
	// requests (default 5m).
	HeaderTimeout time.Duration
	IdleTimeout   time.Duration
	// Logf, when set, receives diagnostics.
	Logf func(format string, args ...any)
}

// Serve intercepts one client connection: initial holds bytes the client
// already sent (buffered by the caller). It returns when the connection is
// closed; it always closes client and cfg.First.
func Serve(client net.Conn, initial []byte, cfg Config) error {
	if err := cfg.check(); err != nil {
		client.Close()
		if cfg.First != nil {
			cfg.First.Close()
		}
		return err
	}
	it := newInterceptor(cfg)
	defer it.close()
	return it.serve(client, initial)
}

func (c *Config) check() error {
	switch {
	case c.Authority == nil:
		return errors.New("inspect: no certificate authority (Config.Authority)")
	case c.Check == nil:
		return errors.New("inspect: no request policy (Config.Check)")
	case c.Dial == nil && c.First == nil:
		return errors.New("inspect: no way to reach the upstream (Config.Dial)")
	case c.Host == "":
		return errors.New("inspect: no target host")
	}
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.Record == nil {
		c.Record = func(audit.Event) {}
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// serve peeks at the first bytes and serves TLS or plain HTTP.
func (it *interceptor) serve(client net.Conn, initial []byte) error {
	start := time.Now()
	client.SetReadDeadline(start.Add(it.cfg.HeaderTimeout))
	peeked, read, err := tlspeek.Peek(io.MultiReader(bytes.NewReader(initial), client), tlspeek.DefaultMax)
	client.SetReadDeadline(time.Time{})
	conn := &replayConn{Conn: client, pending: read, closed: make(chan struct{})}
	switch {
	case peeked.Kind == tlspeek.KindTLS && err == nil:
		if !sameHost(peeked.Name, it.cfg.Host) {
			text := fmt.Sprintf("the TLS ClientHello names %q, but the tunnel goes to %s", peeked.Name, it.cfg.Host)
			it.refuseConn(ReasonSNIMismatch, text, start)
			conn.Close()
			return fmt.Errorf("inspect: %s", text)
		}
		return it.serveTLS(conn, start)
	case peeked.Kind == tlspeek.KindHTTP && err == nil:
		it.plain = true
		return it.serveHTTP(conn)
	}
	text := "the connection's first bytes are neither a TLS ClientHello nor an HTTP/1.x request"
	if err != nil {
		text += ": " + err.Error()
	}
	it.refuseConn(ReasonUnknownProtocol, text, start)
	conn.Close()
	return fmt.Errorf("inspect: %s", text)
}

// serveTLS terminates TLS with the host's leaf and serves the requests.
func (it *interceptor) serveTLS(conn *replayConn, start time.Time) error {
	conf, err := it.cfg.Authority.serverConfig(it.cfg.Host)
	if err != nil {
		conn.Close()
		return err
	}
	tc := tls.Server(conn, conf)
	tc.SetDeadline(time.Now().Add(it.cfg.HeaderTimeout))
	if err := tc.Handshake(); err != nil {
		it.refuseConn(ReasonHandshake, fmt.Sprintf("TLS handshake with the client failed: %v", err), start)
		tc.Close()
		return fmt.Errorf("inspect: TLS handshake with the client: %w", err)
	}
	tc.SetDeadline(time.Time{})
	return it.serveHTTPOn(tc, conn.closed)
}

// serveHTTP serves plain HTTP/1.x requests on conn.
func (it *interceptor) serveHTTP(conn *replayConn) error {
	return it.serveHTTPOn(conn, conn.closed)
}

// serveHTTPOn runs an http.Server on the single connection c until closed
// is closed (which happens when c, or a hijacker of it, closes it).
func (it *interceptor) serveHTTPOn(c net.Conn, closed <-chan struct{}) error {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	srv := &http.Server{
		Handler:           it,
		Protocols:         &protos,
		ReadHeaderTimeout: it.cfg.HeaderTimeout,
		IdleTimeout:       it.cfg.IdleTimeout,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	l := &oneConnListener{conn: c, closed: closed}
	err := srv.Serve(l)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// refuseConn records a refusal of the whole connection.
func (it *interceptor) refuseConn(reason, text string, start time.Time) {
	ev := it.cfg.Event
	ev.Time = start
	ev.Host, ev.Port = it.cfg.Host, it.cfg.Port
	ev.Decision, ev.Reason, ev.Text = audit.DecisionDeny, reason, text
	ev.Duration = float64(time.Since(start)) / float64(time.Millisecond)
	it.cfg.Record(ev)
}

// sameHost reports whether the name a client gave names target. An IP
// target also accepts an empty name (clients send no SNI for addresses).
func sameHost(name, target string) bool {
	n, t := normalHost(name), normalHost(target)
	if n == t && n != "" {
		return true
	}
	if _, err := netip.ParseAddr(t); err == nil && n == "" {
		return true
	}
	return false
}

// replayConn replays bytes read while peeking before reading from Conn,
// and closes closed when closed.
type replayConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
	once    sync.Once
	closed  chan struct{}
}

func (c *replayConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

func (c *replayConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// oneConnListener hands out one connection, then blocks until it closes.
type oneConnListener struct {
	conn   net.Conn
	closed <-chan struct{}
	once   sync.Once
	given  bool
	mu     sync.Mutex
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if !l.given {
		l.given = true
		l.mu.Unlock()
		return l.conn, nil
	}
	l.mu.Unlock()
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
