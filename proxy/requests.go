package proxy

import (
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// RequestPolicy decides requests inside hosts that carry method or path
// rules (inspected hosts). *policy.Policy implements it.
type RequestPolicy interface {
	// Inspects reports whether requests to host:port are decided one by one.
	Inspects(host string, port uint16) bool
	// CheckRequest decides one request to an inspected host.
	CheckRequest(host string, port uint16, method, path string) policy.Decision
}

// Secrets substitutes placeholders on inspected requests (package secrets implements it).
type Secrets interface {
	Binds(host string, port uint16) bool                   // host:port gets real values: inspect it
	Apply(host string, port uint16, r *http.Request) error // replace or refuse (secret-not-bound)
}

// Reasons and X-Proxy-Error values of the proxy's own refusals of
// inspected hosts.
const (
	// ReasonSecretNotBound: a request carried a secret's placeholder to a
	// host the secret is not bound to (Secrets.Apply refused it).
	ReasonSecretNotBound = "secret-not-bound"
	// ReasonInspectUnavailable: the host must be inspected but the
	// server has no certificate authority (Options.Authority).
	ReasonInspectUnavailable = "inspect-unavailable"
)

// requestPolicy returns the policy in force (the gate's live one when it
// has one) as a RequestPolicy, or nil when there is none.
func (s *Server) requestPolicy() RequestPolicy {
	if s.gate == nil {
		return nil
	}
	p := s.gate.Policy
	if s.gate.Live != nil {
		p, _ = s.gate.Live.Current()
	}
	if p == nil {
		return nil
	}
	return p
}

// inspects reports whether connections to host:port must be inspected:
// the policy decides their requests one by one, or a secret is bound to
// the host.
func (s *Server) inspects(host string, port uint16) bool {
	if rp := s.requestPolicy(); rp != nil && rp.Inspects(host, port) {
		return true
	}
	return s.secrets != nil && s.secrets.Binds(host, port)
}

// checkRequest decides one request to host:port by the policy in force.
func (s *Server) checkRequest(host string, port uint16, method, path string) policy.Decision {
	rp := s.requestPolicy()
	if rp == nil {
		return policy.Decision{Block: policy.BlockAllowlist, Reason: policy.ReasonNotAllowed,
			Text: "sandgate has no policy configured, so nothing is allowed"}
	}
	return rp.CheckRequest(host, port, method, path)
}

// isRequestBlock reports whether b refuses a request inside an allowed
// host (by method or path) rather than the host itself.
func isRequestBlock(b policy.Block) bool {
	return b == policy.BlockMethod || b == policy.BlockPath
}

// requestPath is the path of r as CheckRequest takes it: escaped, as sent,
// with "?query" when there is one.
func requestPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	if r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	return p
}

// decideForward decides a plain-HTTP request inside its host before
// anything is dialled: for an inspected host by the policy's method and
// path rules, and for every host by Secrets (a placeholder sent to a host
// its secret is not bound to is refused; one sent to a bound host is
// replaced). When ok is false it has answered the client and recorded the
// refusal. inspected says whether the host's requests are decided one by
// one (their events carry method and path).
func (s *Server) decideForward(w http.ResponseWriter, r *http.Request, host string, port uint16, path string, start time.Time) (inspected, ok bool) {
	if !s.checkProxyAuth(w, r) {
		s.recordAuthFailure(r, "http", host, port, start)
		return false, false
	}
	refuse := func(d policy.Decision, code string) {
		ev := event("http", r.RemoteAddr, host, port, egress.Result{Decision: d}, netip.AddrPort{})
		ev.Time, ev.Method, ev.Path = start, r.Method, path
		plainError(w, http.StatusForbidden, code, d.Text)
		s.record(ev, start)
	}
	inspected = s.inspects(host, port)
	if rp := s.requestPolicy(); rp != nil && rp.Inspects(host, port) {
		d := rp.CheckRequest(host, port, r.Method, path)
		if !d.Allow && isRequestBlock(d.Block) {
			refuse(d, blockCode(d.Block))
			return inspected, false
		}
	}
	if s.secrets != nil {
		if err := s.secrets.Apply(host, port, r); err != nil {
			refuse(policy.Decision{Reason: ReasonSecretNotBound, Text: err.Error()}, ReasonSecretNotBound)
			return inspected, false
		}
	}
	return inspected, true
}

// redactor is what Secrets may also implement: it hides real values and
// placeholders in text bound for logs and the audit.
type redactor interface {
	Redact(s string) string
}

// redact hides secrets in the free-text fields of e when Secrets can.
func (s *Server) redact(e audit.Event) audit.Event {
	if rd, ok := s.secrets.(redactor); ok {
		e.Path = rd.Redact(e.Path)
		e.Text = rd.Redact(e.Text)
	}
	return e
}

// concealer is what Secrets may also implement: it puts placeholders back
// in place of real values in a bound host's responses, so that a server
// echoing a request does not hand CMD the value.
type concealer interface {
	ConcealHeader(h http.Header)
	ConcealReader(src io.Reader) io.Reader
}

// concealResponse returns what hides real values in the responses of
// host:port (header and body; a 101's body is the upgraded connection and
// is left alone, and so are trailers), or nil when no secret is bound
// there or Secrets cannot conceal.
func (s *Server) concealResponse(host string, port uint16) func(*http.Response) error {
	c, ok := s.secrets.(concealer)
	if !ok || !s.secrets.Binds(host, port) {
		return nil
	}
	return func(resp *http.Response) error {
		c.ConcealHeader(resp.Header)
		if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
			resp.Body = concealedBody{Reader: c.ConcealReader(resp.Body), Closer: resp.Body}
		}
		return nil
	}
}

// concealedBody reads through a concealing reader and closes the original
// body.
type concealedBody struct {
	io.Reader
	io.Closer
}
