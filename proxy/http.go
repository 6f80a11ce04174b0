package proxy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// maxResponseHeaderBytes bounds the head of an upstream response.
const maxResponseHeaderBytes = 1 << 20

// hopByHop lists the headers that describe one connection rather than the
// message (RFC 9110 section 7.6.1), plus the proxy's own authentication
// headers. They are never forwarded.
var hopByHop = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authorization",
	"Proxy-Authenticate",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHop deletes hop-by-hop headers from h, including every header
// named in its Connection headers.
func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// handleHTTP is the net/http handler for every proxy request.
func (s *Server) handleHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logf("proxy: internal error serving %s %q for %s: %v", r.Method, r.RequestURI, r.RemoteAddr, v)
			// Let net/http close the connection without logging again.
			panic(http.ErrAbortHandler)
		}
	}()
	start := time.Now()
	sc := screenOf(r.Context())
	sc.next()
	defer sc.done()
	if r.Method == http.MethodConnect {
		s.handleConnect(w, r, start)
		return
	}
	s.handleForward(w, r, start)
}

// plainError writes a short text response that belongs to the proxy. A
// "Connection: close" the handler set is kept.
func plainError(w http.ResponseWriter, code int, proxyErr, text string) {
	h := w.Header()
	closing := h.Get("Connection") == "close"
	for k := range h {
		delete(h, k)
	}
	if closing {
		h.Set("Connection", "close")
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if proxyErr != "" {
		h.Set("X-Proxy-Error", proxyErr)
	}
	w.WriteHeader(code)
	io.WriteString(w, text+"\n")
}

// checkProxyAuth reports whether r carries the configured credentials as
// Proxy-Authorization: Basic. It answers 407 when it does not.
func (s *Server) checkProxyAuth(w http.ResponseWriter, r *http.Request) bool {
	if !s.authOn {
		return true
	}
	user, pass, ok := parseBasic(r.Header.Get("Proxy-Authorization"))
	if ok && s.authorized(user, pass) {
		return true
	}
	w.Header().Set("Proxy-Authenticate", `Basic realm="sandgate", charset="UTF-8"`)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusProxyAuthRequired)
	if ok {
		io.WriteString(w, "sandgate: wrong proxy credentials\n")
	} else {
		io.WriteString(w, "sandgate: this proxy needs credentials (Proxy-Authorization: Basic)\n")
	}
	return false
}

// parseBasic decodes a "Basic base64(user:password)" header value.
func parseBasic(v string) (user, pass string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

// refused answers a refusal from the gate and records it. A name that did
// not resolve is not a policy refusal: it is answered 502 so that clients
// report a network problem rather than a block.
func (s *Server) refused(w http.ResponseWriter, ev audit.Event, res egress.Result, start time.Time) {
	if res.Decision.Reason == policy.ReasonResolveFailed {
		plainError(w, http.StatusBadGateway, "resolve-failed", res.Decision.Text)
	} else {
		plainError(w, http.StatusForbidden, blockCode(res.Decision.Block), res.Decision.Text)
	}
	s.record(ev, start)
}

// dialFailed answers a failed connection after an allow and records it.
func (s *Server) dialFailed(w http.ResponseWriter, ev audit.Event, host string, port uint16, err error, start time.Time) {
	code, reason, tag := http.StatusBadGateway, audit.ReasonDialFailed, "dial-failed"
	if isTimeout(err) {
		code, reason, tag = http.StatusGatewayTimeout, audit.ReasonDialTimeout, "dial-timeout"
	}
	ev.Reason = reason
	ev.Text = fmt.Sprintf("connecting to %s failed: %v", net.JoinHostPort(host, strconv.Itoa(int(port))), err)
	plainError(w, code, tag, "sandgate: "+ev.Text)
	s.record(ev, start)
}

// badTarget answers a request whose target cannot be used, recording it when
// it named a host.
func (s *Server) badTarget(w http.ResponseWriter, r *http.Request, proto, host string, port uint16, text string, start time.Time) {
	plainError(w, http.StatusBadRequest, "bad-request", "sandgate: "+text)
	if host == "" {
		s.logf("proxy: bad request from %s: %s", r.RemoteAddr, text)
		return
	}
	s.record(audit.Event{
		Time: start, Proto: proto, Client: r.RemoteAddr, Host: host, Port: port,
		Decision: audit.DecisionDeny, Reason: audit.ReasonBadRequest, Text: text,
	}, start)
}

// handleConnect answers CONNECT host:port by opening a tunnel.
func (s *Server) handleConnect(w http.ResponseWriter, r *http.Request, start time.Time) {
	// The bytes after a CONNECT head are the tunnel's and are not screened,
	// so a CONNECT that does not become a tunnel ends the connection.
	w.Header().Set("Connection", "close")
	// The target is the request's authority as sent, never the Host header.
	authority := r.RequestURI
	host, portText, err := net.SplitHostPort(authority)
	if err != nil || host == "" || strings.HasPrefix(authority, "/") {
		s.badTarget(w, r, "connect", "", 0, fmt.Sprintf("CONNECT needs host:port, got %q", authority), start)
		return
	}
	port, err := policy.ParsePort(portText)
	if err != nil {
		s.badTarget(w, r, "connect", host, 0, fmt.Sprintf("CONNECT %q: %v", authority, err), start)
		return
	}
	upstream, ev, ok := s.openUpstream(w, r, "connect", host, port, start)
	if !ok {
		return
	}
	inspected := s.inspects(host, port)
	if inspected && s.authority == nil {
		upstream.Close()
		ev = inspectUnavailable(ev)
		plainError(w, http.StatusForbidden, ReasonInspectUnavailable, ev.Text)
		s.record(ev, start)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		plainError(w, http.StatusInternalServerError, "", "sandgate: this connection cannot carry a tunnel")
		return
	}
	raw, brw, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		s.logf("proxy: CONNECT %s from %s: take over connection: %v", authority, r.RemoteAddr, err)
		return
	}
	// Bytes the client sent after the request head (a TLS ClientHello, say)
	// already sit in net/http's reader; they go upstream first.
	var initial []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		initial = append([]byte(nil), b...)
	}
	client := raw
	if cc, ok := raw.(*clientConn); ok {
		client = cc.Conn // the raw socket, so io.Copy can splice
	}
	client.SetWriteDeadline(time.Now().Add(s.lim.HeaderTimeout))
	if _, err := fmt.Fprintf(client, "HTTP/%d.%d 200 Connection established\r\n\r\n", r.ProtoMajor, r.ProtoMinor); err != nil {
		raw.Close()
		upstream.Close()
		ev.Reason, ev.Text = audit.ReasonClientGone, fmt.Sprintf("answering the client failed: %v", err)
		s.record(ev, start)
		return
	}
	if inspected {
		s.startInspection(client, raw, upstream, initial, ev, start, s.gate)
		return
	}
	s.startTunnel(client, raw, upstream, initial, ev, start)
}

// clientGone reports whether the connection attempt failed only because
// the client went away (net/http cancels a request's context when its
// connection closes), and records the event as such.
func (s *Server) clientGone(ctx context.Context, ev *audit.Event, res egress.Result, err error, start time.Time) bool {
	if ctx.Err() == nil {
		return false
	}
	if err == nil && res.Decision.Reason != policy.ReasonResolveFailed {
		return false
	}
	// A failed lookup or dial means the name had already passed the policy.
	ev.Decision = audit.DecisionAllow
	ev.Reason = audit.ReasonClientGone
	ev.Text = "the client went away before the connection was made"
	s.record(*ev, start)
	return true
}

// recordAuthFailure records a request refused for missing or wrong
// credentials.
func (s *Server) recordAuthFailure(r *http.Request, proto, host string, port uint16, start time.Time) {
	reason, text := audit.ReasonAuthFailed, "proxy credentials wrong (or not Basic)"
	if r.Header.Get("Proxy-Authorization") == "" {
		// A challenge, which a client that has credentials answers
		// (audit.Summary counts it only when it never does).
		reason, text = audit.ReasonAuthChallenge, "proxy credentials asked for (407); the request carried none"
	}
	s.record(audit.Event{
		Time: start, Proto: proto, Client: r.RemoteAddr, Host: host, Port: port,
		Decision: audit.DecisionDeny, Reason: reason, Text: text,
	}, start)
}

// handleForward forwards an absolute-form request (GET http://host/...).
func (s *Server) handleForward(w http.ResponseWriter, r *http.Request, start time.Time) {
	u := r.URL
	if u == nil || u.Host == "" || !u.IsAbs() {
		s.badTarget(w, r, "http", "", 0,
			fmt.Sprintf("%s %q is not a proxy request: this is a forward proxy and needs an absolute http:// URL (use CONNECT for https)", r.Method, r.RequestURI), start)
		return
	}
	host := u.Hostname()
	port := uint16(80)
	if p := u.Port(); p != "" {
		var err error
		if port, err = policy.ParsePort(p); err != nil {
			s.badTarget(w, r, "http", host, 0, fmt.Sprintf("URL %q: %v", r.RequestURI, err), start)
			return
		}
	}
	switch {
	case u.Scheme == "https":
		s.badTarget(w, r, "http", host, port, fmt.Sprintf("%q: https:// URLs must go through CONNECT; this proxy does not originate TLS", r.RequestURI), start)
		return
	case u.Scheme != "http":
		s.badTarget(w, r, "http", host, port, fmt.Sprintf("%q: only http:// URLs can be forwarded", r.RequestURI), start)
		return
	case host == "":
		s.badTarget(w, r, "http", "", 0, fmt.Sprintf("URL %q names no host", r.RequestURI), start)
		return
	}
	if ferr := screenOf(r.Context()).failure(); ferr != nil {
		w.Header().Set("Connection", "close")
		s.badTarget(w, r, "http", host, port, "refused: "+ferr.Error(), start)
		return
	}
	path := requestPath(r) // as sent, before Secrets replaces anything
	inspected, ok := s.decideForward(w, r, host, port, path, start)
	if !ok {
		return
	}
	upstream, ev, ok := s.openUpstream(w, r, "http", host, port, start)
	if !ok {
		return
	}
	if inspected {
		ev.Method, ev.Path = r.Method, path
	}
	var err error
	ev.BytesUp, ev.BytesDown, err = s.forward(w, r, upstream, s.concealResponse(host, port))
	var ferr *framingError
	switch {
	case errors.As(err, &ferr):
		ev.Decision, ev.Reason = audit.DecisionDeny, audit.ReasonBadRequest
	case isTimeout(err):
		ev.Reason = audit.ReasonUpstreamTimeout
	case err != nil:
		ev.Reason = audit.ReasonUpstream
	}
	if err != nil {
		ev.Text = err.Error()
	}
	s.record(ev, start)
	var abort *abortError
	if errors.As(err, &abort) {
		// The response head is gone; closing the connection is the only
		// way to tell the client that the body is incomplete.
		panic(http.ErrAbortHandler)
	}
}

// abortError marks a failure after the response head was sent.
type abortError struct{ err error }

func (e *abortError) Error() string { return e.err.Error() }
func (e *abortError) Unwrap() error { return e.err }

// forward sends r to the already dialled upstream connection and copies the
// response back, through conceal when it is not nil. It returns the body
// bytes moved each way.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, upstream net.Conn, conceal func(*http.Response) error) (up, down int64, err error) {
	ic := &idleConn{Conn: upstream, idle: s.lim.IdleTimeout}
	pc := &preparedConn{c: ic}
	defer pc.closeUnused()

	out := &http.Request{
		Method: r.Method,
		URL: &url.URL{
			Scheme:   "http",
			Host:     r.URL.Host, // the host the gate decided on
			Path:     r.URL.Path,
			RawPath:  r.URL.RawPath,
			RawQuery: r.URL.RawQuery,
		},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.Header.Clone(),
		ContentLength: r.ContentLength,
		Host:          r.URL.Host, // Host header agrees with the target
		Close:         true,
	}
	if out.URL.Path == "" {
		out.URL.Path = "/"
	}
	removeHopByHop(out.Header)
	body := &countingReader{r: r.Body}
	if r.ContentLength != 0 {
		out.Body = body
	}
	if len(r.Trailer) > 0 {
		out.Trailer = r.Trailer
	}
	ctx := context.WithValue(r.Context(), preparedConnKey{}, pc)
	resp, err := s.transport.RoundTrip(out.WithContext(ctx))
	if ferr := screenOf(r.Context()).failure(); err != nil && ferr != nil {
		// The body turned out to be ambiguously framed while it was sent.
		w.Header().Set("Connection", "close")
		plainError(w, http.StatusBadRequest, "bad-request", "sandgate: refused: "+ferr.Error())
		return body.n.Load(), 0, ferr
	}
	if err != nil {
		code, tag := http.StatusBadGateway, "upstream-error"
		if isTimeout(err) {
			code, tag = http.StatusGatewayTimeout, "upstream-timeout"
		}
		err = fmt.Errorf("forwarding to %s failed: %w", r.URL.Host, err)
		plainError(w, code, tag, "sandgate: "+err.Error())
		return body.n.Load(), 0, err
	}
	if conceal != nil {
		conceal(resp)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		err = fmt.Errorf("%s answered 101 Switching Protocols; upgrades need CONNECT", r.URL.Host)
		plainError(w, http.StatusBadGateway, "upstream-error", "sandgate: "+err.Error())
		return body.n.Load(), 0, err
	}

	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	removeHopByHop(h)
	for _, name := range ic.connectionTokens() {
		h.Del(name)
	}
	if _, ok := resp.Header["Content-Type"]; !ok {
		h["Content-Type"] = nil // forward as it came: no sniffed type
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)

	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{})
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			rc.SetWriteDeadline(time.Now().Add(s.lim.IdleTimeout))
			m, werr := w.Write(buf[:n])
			down += int64(m)
			if werr == nil {
				werr = rc.Flush()
			}
			if werr != nil {
				return body.n.Load(), down, fmt.Errorf("writing the response to the client: %w", werr)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// Headers are gone; abort so the client sees a broken response
			// rather than a short one that looks complete.
			return body.n.Load(), down, &abortError{fmt.Errorf("reading the response from %s: %w", r.URL.Host, rerr)}
		}
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	return body.n.Load(), down, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.ReadCloser
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// preparedConnKey carries a *preparedConn in a request context to the
// forwarding transport's DialContext.
type preparedConnKey struct{}

// preparedConn hands one connection, already dialled by the gate, to the
// transport exactly once. The transport never dials on its own, so it can
// neither reach an address the gate did not choose nor reuse a connection
// across requests.
type preparedConn struct {
	mu sync.Mutex
	c  net.Conn
}

func (p *preparedConn) take() net.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.c
	p.c = nil
	return c
}

// closeUnused closes the connection if the transport never took it.
func (p *preparedConn) closeUnused() {
	if c := p.take(); c != nil {
		c.Close()
	}
}

// newForwardTransport returns the transport for absolute-form requests. It
// keeps no connection alive, adds no Accept-Encoding, and dials nothing: the
// connection comes from the gate through the request context. headTimeout
// bounds the wait for a response head after the request was written.
func newForwardTransport(headTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			pc, _ := ctx.Value(preparedConnKey{}).(*preparedConn)
			if pc == nil {
				return nil, fmt.Errorf("proxy: no connection prepared for %s", addr)
			}
			c := pc.take()
			if c == nil {
				return nil, fmt.Errorf("proxy: connection to %s already used", addr)
			}
			return c, nil
		},
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		ResponseHeaderTimeout:  headTimeout,
		ForceAttemptHTTP2:      false,
	}
}

// idleConn ends an upstream exchange when no byte moves either way for idle.
// It also follows the response head as it arrives (see headScanner) to learn
// the hop-by-hop header names its Connection headers list.
type idleConn struct {
	net.Conn
	idle time.Duration
	last atomic.Int64 // UnixNano of the last byte moved

	mu   sync.Mutex
	head headScanner
}

// connectionTokens returns the header names listed in the Connection
// headers of the response head(s) seen so far.
func (c *idleConn) connectionTokens() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.head.tokens...)
}

// capture feeds p to the head scanner until the final head is complete or
// longer than the transport accepts.
func (c *idleConn) capture(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head.done || c.head.size > maxResponseHeaderBytes {
		return
	}
	c.head.feed(p)
}

func (c *idleConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *idleConn) Read(p []byte) (int, error) {
	if c.last.Load() == 0 {
		c.touch()
	}
	for {
		c.Conn.SetReadDeadline(time.Unix(0, c.last.Load()).Add(c.idle))
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.touch()
			c.capture(p[:n])
			return n, err
		}
		if err != nil && isTimeout(err) && time.Since(time.Unix(0, c.last.Load())) < c.idle {
			continue // bytes moved the other way meanwhile
		}
		return n, err
	}
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

// openUpstream authenticates the client, decides host:port and dials it.
// When it returns ok false it has already answered the client and recorded
// the event; otherwise the caller owns upstream and records ev when done.
func (s *Server) openUpstream(w http.ResponseWriter, r *http.Request, proto, host string, port uint16, start time.Time) (net.Conn, audit.Event, bool) {
	if !s.checkProxyAuth(w, r) {
		s.recordAuthFailure(r, proto, host, port, start)
		return nil, audit.Event{}, false
	}
	upstream, res, dialed, err := s.connect(askContext(r, proto), host, port)
	ev := event(proto, r.RemoteAddr, host, port, res, dialed)
	if s.clientGone(r.Context(), &ev, res, err, start) {
		return nil, ev, false
	}
	if !res.Decision.Allow {
		if upstream != nil {
			upstream.Close()
		}
		s.refused(w, ev, res, start)
		return nil, ev, false
	}
	if err != nil {
		s.dialFailed(w, ev, host, port, err, start)
		return nil, ev, false
	}
	return upstream, ev, true
}
