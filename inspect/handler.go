package inspect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/policy"
)

// interceptor serves the requests of one client connection.
type interceptor struct {
	cfg   Config
	plain bool // the client speaks plain HTTP/1.x; so does the upstream

	firstMu sync.Mutex
	first   net.Conn // the pre-dialled upstream, until used

	transport *http.Transport // h2 or HTTP/1.1, as the upstream speaks
	h1        *http.Transport // HTTP/1.1 only, for upgrades (WebSocket)
	proxy     *httputil.ReverseProxy
}

// ctxKey carries a request's audit event through the ReverseProxy.
type ctxKey struct{}

// newInterceptor builds the upstream transport and reverse proxy.
func newInterceptor(cfg Config) *interceptor {
	it := &interceptor{cfg: cfg, first: cfg.First}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	it.transport = &http.Transport{
		DialContext: it.dialPlain,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return it.dialTLS(ctx, []string{"h2", "http/1.1"})
		},
		ForceAttemptHTTP2:   true,
		Protocols:           &protos,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	var h1 http.Protocols
	h1.SetHTTP1(true)
	it.h1 = &http.Transport{
		DialContext: it.dialPlain,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return it.dialTLS(ctx, []string{"http/1.1"})
		},
		Protocols:       &h1,
		IdleConnTimeout: 90 * time.Second,
	}
	it.proxy = &httputil.ReverseProxy{
		Rewrite:      it.rewriteOut,
		Transport:    roundTripFunc(it.roundTrip),
		ErrorHandler: it.upstreamError,
		ErrorLog:     log.New(io.Discard, "", 0),
		BufferPool:   copyBuffers{},
	}
	if cfg.Response != nil {
		it.proxy.ModifyResponse = cfg.Response
	}
	return it
}

// copyBufferSize is the size of the buffers bodies are copied through.
// A read from an h2 upstream returns as much as its stream has buffered,
// and each write to an h2 client becomes one DATA frame: ReverseProxy's
// 32 KiB default makes many small frames (each split into TLS records
// with a 9-byte frame header left over) and a hand-off between goroutines
// per frame.
const copyBufferSize = 128 << 10

// copyBufferPool holds the copy buffers (as pointers, so that Put does not
// allocate).
var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// copyBuffers is ReverseProxy's BufferPool.
type copyBuffers struct{}

func (copyBuffers) Get() []byte { return *copyBufferPool.Get().(*[]byte) }

func (copyBuffers) Put(b []byte) {
	if cap(b) == copyBufferSize {
		b = b[:copyBufferSize]
		copyBufferPool.Put(&b)
	}
}

// roundTripFunc makes a function an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends upgrades over HTTP/1.1 and the rest as the upstream
// prefers.
func (it *interceptor) roundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Upgrade") != "" {
		return it.h1.RoundTrip(r)
	}
	return it.transport.RoundTrip(r)
}

// close releases the upstream connections.
func (it *interceptor) close() {
	it.transport.CloseIdleConnections()
	it.h1.CloseIdleConnections()
	it.firstMu.Lock()
	if it.first != nil {
		it.first.Close()
		it.first = nil
	}
	it.firstMu.Unlock()
}

// dialRaw returns the pre-dialled connection once, then new ones.
func (it *interceptor) dialRaw(ctx context.Context) (net.Conn, error) {
	it.firstMu.Lock()
	c := it.first
	it.first = nil
	it.firstMu.Unlock()
	if c != nil {
		return c, nil
	}
	if it.cfg.Dial == nil {
		return nil, errors.New("inspect: no further upstream connections can be made")
	}
	return it.cfg.Dial(ctx)
}

func (it *interceptor) dialPlain(ctx context.Context, _, _ string) (net.Conn, error) {
	return it.dialRaw(ctx)
}

// dialTLS opens a verified TLS connection to the target.
func (it *interceptor) dialTLS(ctx context.Context, alpn []string) (net.Conn, error) {
	raw, err := it.dialRaw(ctx)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, &tls.Config{
		ServerName:         normalHost(it.cfg.Host),
		RootCAs:            it.cfg.RootCAs,
		NextProtos:         alpn,
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: it.cfg.Authority.upstreamSessions(it.cfg.RootCAs, it.cfg.Port),
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &upstreamTLSError{err: err}
	}
	return tc, nil
}

// upstreamTLSError marks a failed TLS handshake with the upstream.
type upstreamTLSError struct{ err error }

func (e *upstreamTLSError) Error() string { return "TLS with the upstream failed: " + e.err.Error() }
func (e *upstreamTLSError) Unwrap() error { return e.err }

// reqState is what the handler learns about a request, for its event.
type reqState struct {
	ev     audit.Event
	status atomic.Int64
	tag    string
}

// ServeHTTP decides one request and forwards it when allowed.
func (it *interceptor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &reqState{ev: it.cfg.Event}
	st.ev.Time = start
	st.ev.Host, st.ev.Port = it.cfg.Host, it.cfg.Port
	st.ev.Method, st.ev.Path = r.Method, r.URL.Path
	if r.URL.RawQuery != "" {
		st.ev.Path += "?" + r.URL.RawQuery
	}
	cw := &countingWriter{ResponseWriter: w}
	defer func() {
		st.ev.BytesDown = cw.n
		st.ev.Duration = float64(time.Since(start)) / float64(time.Millisecond)
		it.cfg.Record(st.ev)
	}()
	if !it.hostMatches(r) {
		it.deny(cw, st, http.StatusMisdirectedRequest, ReasonHostMismatch,
			fmt.Sprintf("the request names host %q, but this connection goes to %s", r.Host, it.cfg.Host))
		return
	}
	if bad := badPath(r); bad != "" {
		it.deny(cw, st, http.StatusBadRequest, ReasonBadPath, bad)
		return
	}
	d := it.cfg.Check(r.Method, checkPath(r))
	if !d.Allow {
		it.denyDecision(cw, st, d)
		return
	}
	if it.cfg.Rewrite != nil {
		if err := it.cfg.Rewrite(it.cfg.Host, r); err != nil {
			it.deny(cw, st, http.StatusForbidden, ReasonSecretNotBound, err.Error())
			return
		}
	}
	st.ev.Decision, st.ev.Reason, st.ev.Text = audit.DecisionAllow, d.Reason, d.Text
	if r.Body != nil && r.Body != http.NoBody {
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		defer func() { st.ev.BytesUp = body.n.Load() }()
	}
	it.proxy.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))
}

// checkPath is the path a request is decided on: the path in escaped
// form, as sent, and "?query" when there is one (a rule may name the
// query, e.g. git's info/refs?service=git-upload-pack).
func checkPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	return p
}

// denyDecision answers a policy refusal.
func (it *interceptor) denyDecision(w http.ResponseWriter, st *reqState, d policy.Decision) {
	code := d.Block.String()
	if code == "" || strings.HasPrefix(code, "Block(") {
		code = "blocked-by-path"
	}
	text := d.Text
	if text == "" {
		text = fmt.Sprintf("%s %s on %s is not allowed", st.ev.Method, st.ev.Path, it.cfg.Host)
	}
	st.ev.Decision, st.ev.Reason, st.ev.Text = audit.DecisionDeny, d.Reason, text
	if st.ev.Reason == "" {
		st.ev.Reason = code
	}
	writeError(w, http.StatusForbidden, code, text)
}

// deny answers and records a refusal of the interceptor's own.
func (it *interceptor) deny(w http.ResponseWriter, st *reqState, status int, reason, text string) {
	st.ev.Decision, st.ev.Reason, st.ev.Text = audit.DecisionDeny, reason, text
	writeError(w, status, reason, text)
}

// writeError writes a plain-text error with X-Proxy-Error.
func writeError(w http.ResponseWriter, status int, tag, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if tag != "" {
		h.Set("X-Proxy-Error", tag)
	}
	w.WriteHeader(status)
	fmt.Fprintln(w, "sandgate: "+text)
}

// hostMatches reports whether the request's Host (or :authority) names
// the target, with no port or the target's port (or the scheme's default).
func (it *interceptor) hostMatches(r *http.Request) bool {
	h := r.Host
	if h == "" {
		return false
	}
	host, port := h, ""
	if hh, pp, err := net.SplitHostPort(h); err == nil {
		host, port = hh, pp
	}
	if normalHost(host) != normalHost(it.cfg.Host) {
		return false
	}
	if port == "" {
		return true
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return false
	}
	return uint16(n) == it.cfg.Port
}

// badPath refuses paths a rule could read differently from the upstream:
// dot segments, and encoded slashes or backslashes.
func badPath(r *http.Request) string {
	if r.Method == http.MethodConnect || r.URL.Opaque != "" {
		return fmt.Sprintf("%s %q is not a request this proxy forwards", r.Method, r.RequestURI)
	}
	p := r.URL.Path
	if p == "" || p[0] != '/' {
		if p == "" && r.Method == http.MethodOptions {
			return ""
		}
		if p == "" {
			return ""
		}
		return fmt.Sprintf("the path %q does not start with /", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Sprintf("the path %q has a dot segment; send the path in its normal form", p)
		}
	}
	esc := strings.ToLower(r.URL.EscapedPath())
	if strings.Contains(esc, "%2f") || strings.Contains(esc, "%5c") || strings.ContainsAny(p, "\\\x00") {
		return fmt.Sprintf("the path %q has an encoded slash, a backslash or a NUL; send the path in its normal form", p)
	}
	return ""
}

// rewriteOut points the outgoing request at the target.
func (it *interceptor) rewriteOut(pr *httputil.ProxyRequest) {
	out := pr.Out
	out.URL.Scheme = "https"
	if it.plain {
		out.URL.Scheme = "http"
	}
	out.URL.Host = net.JoinHostPort(normalHost(it.cfg.Host), strconv.Itoa(int(it.cfg.Port)))
	out.Host = pr.In.Host
	// Keep the client's X-Forwarded-For as sent: Rewrite (unlike
	// Director) adds nothing, so the upstream sees what the client sent.
}

// upstreamError answers a failed upstream exchange.
func (it *interceptor) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(ctxKey{}).(*reqState)
	var tlsErr *upstreamTLSError
	var status int
	var tag, reason, text string
	switch {
	case errors.As(err, &tlsErr):
		status, tag, reason = http.StatusBadGateway, ReasonUpstreamTLS, ReasonUpstreamTLS
		text = fmt.Sprintf("the certificate of %s did not verify: %s", it.cfg.Host, certReason(tlsErr.err))
	case r.Context().Err() != nil:
		status, tag, reason = 499, "", audit.ReasonClientGone
		text = "the client went away"
	case isTimeout(err):
		status, tag, reason = http.StatusGatewayTimeout, "upstream-timeout", audit.ReasonUpstreamTimeout
		text = fmt.Sprintf("%s did not answer in time: %v", it.cfg.Host, err)
	default:
		status, tag, reason = http.StatusBadGateway, "upstream-error", audit.ReasonUpstream
		text = fmt.Sprintf("the exchange with %s failed: %v", it.cfg.Host, err)
	}
	if st != nil {
		st.ev.Reason, st.ev.Text = reason, text
		if reason == ReasonUpstreamTLS {
			// Not sent: sandgate refused to talk to an upstream it
			// cannot verify, a refusal like the policy's.
			st.ev.Decision = audit.DecisionDeny
		}
	}
	it.cfg.Logf("inspect: %s %s %s: %s", it.cfg.Host, r.Method, r.URL.Path, text)
	if status == 499 {
		return
	}
	writeError(w, status, tag, text)
}

// certReason names why an upstream certificate failed, in a few words.
func certReason(err error) string {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return "signed by an unknown authority"
	case errors.As(err, &hn):
		return "issued for another name (" + hn.Error() + ")"
	case errors.As(err, &ci):
		return "invalid (" + ci.Error() + ")"
	}
	return err.Error()
}

// isTimeout reports whether err is a time-out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// countingWriter counts response body bytes; Unwrap lets
// http.ResponseController reach Flush and Hijack.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Flush passes flushes on (ReverseProxy flushes streamed responses).
func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// countingBody counts request body bytes.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
