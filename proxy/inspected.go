package proxy

// Inspected hosts (issue 12): a tunnel (CONNECT, SOCKS5 CONNECT or a
// transparent connection) to a host whose requests are decided one by one
// is not spliced but handed to package inspect, which terminates the
// client's TLS with a leaf of the run's CA, decides each request by the
// policy's method and path rules, lets Secrets rewrite it, and forwards it
// over verified TLS to the host, dialled through the same gate.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/inspect"
	"github.com/sandgate/sandgate/policy"
)

// interception is one client connection served by inspect.Serve. It is
// tracked like a tunnel, so that Shutdown waits for it and can close it.
type interception struct {
	conn *closingConn
}

// Close closes the client connection (giving back its slot), which ends
// the interception and with it its upstream connections.
func (ic *interception) Close() error { return ic.conn.Close() }

// closingConn is the client side of an interception: reads and writes go
// to the raw socket, Close goes to closer (once).
type closingConn struct {
	net.Conn
	closer io.Closer
	once   sync.Once
	err    error
}

func (c *closingConn) Close() error {
	c.once.Do(func() { c.err = c.closer.Close() })
	return c.err
}

// unavailable turns ev into the refusal of a connection that must be
// inspected when the server has no certificate authority.
func inspectUnavailable(ev audit.Event) audit.Event {
	ev.Decision = audit.DecisionDeny
	ev.Reason = ReasonInspectUnavailable
	ev.Text = fmt.Sprintf("%s must be inspected (its requests are decided by method and path, or a secret is bound to it), "+
		"but this proxy has no certificate authority to inspect with; the connection is refused rather than passed through uninspected",
		hostPort(ev.Host, ev.Port))
	return ev
}

// hostPort joins host and port for texts.
func hostPort(host string, port uint16) string {
	return net.JoinHostPort(host, fmt.Sprint(port))
}

// startInspection hands the client connection to inspect.Serve for the
// target of ev (the decided, dialled upstream) and returns without waiting.
// client is the raw client socket, closer closes it and gives back its
// slot, initial holds bytes the client already sent, and g is the gate
// further upstream connections are dialled through. Each request is
// recorded as an event (from ev's Proto, Client, Dialed and Gen) with its
// method and path.
func (s *Server) startInspection(client net.Conn, closer io.Closer, upstream net.Conn, initial []byte, ev audit.Event, start time.Time, g *egress.Gate) {
	ic := &interception{conn: &closingConn{Conn: client, closer: closer}}
	if !s.track(ic, false) {
		ic.Close()
		upstream.Close()
		ev.Reason, ev.Text = audit.ReasonShutdown, "the proxy is shutting down"
		s.record(ev, start)
		return
	}
	client.SetDeadline(time.Time{})
	host, port := ev.Host, ev.Port
	tmpl := ev
	tmpl.Reason, tmpl.Text, tmpl.BytesUp, tmpl.BytesDown = "", "", 0, 0
	cfg := inspect.Config{
		Authority: s.authority,
		Host:      host,
		Port:      port,
		Check: func(method, path string) policy.Decision {
			return decidedByAsker(s.checkRequest(host, port, method, path), g, host, port, method, path)
		},
		First:         upstream,
		Dial:          func(ctx context.Context) (net.Conn, error) { return dialChecked(ctx, g, host, port, s.logf) },
		RootCAs:       s.roots,
		Event:         tmpl,
		Record:        func(e audit.Event) { s.sink.Record(s.redact(e)) },
		HeaderTimeout: s.lim.HeaderTimeout,
		IdleTimeout:   s.lim.IdleTimeout,
		Logf:          s.logf,
	}
	if sec := s.secrets; sec != nil {
		cfg.Rewrite = func(_ string, r *http.Request) error { return sec.Apply(host, port, r) }
		cfg.Response = s.concealResponse(host, port)
	}
	go func() {
		defer func() {
			if v := recover(); v != nil {
				s.logf("proxy: inspecting %s for %s: internal error: %v", hostPort(host, port), ev.Client, v)
			}
			ic.Close()
			s.untrack(ic)
		}()
		// Serve records its own refusals (SNI mismatch, a failed
		// handshake) and every request; its error adds nothing.
		_ = inspect.Serve(ic.conn, initial, cfg)
	}()
}

// decidedByAsker is the decision about one request inside an inspected
// connection whose host the policy in force does not list, when the gate
// has an Asker: the connection was allowed, so the decider allowed the
// host (for the connection, or for the run in a policy this one predates),
// and the host, having no method/path rules, is decided like an allowed
// host without rules: every request passes (each still recorded with its
// method and path, and still given to Secrets). A deny (also one added
// since) and the rules of a listed host decide as before.
func decidedByAsker(d policy.Decision, g *egress.Gate, host string, port uint16, method, path string) policy.Decision {
	if d.Allow || d.Reason != policy.ReasonNotAllowed || g == nil || g.Ask == nil {
		return d
	}
	shown, _, _ := strings.Cut(path, "?")
	return policy.Decision{Allow: true, Reason: policy.ReasonAllowed, Entry: egress.EntryDecider,
		Text: fmt.Sprintf("%s %s%s is allowed: the decider allowed %s for this connection, and the host has no method/path rules", method, hostPort(host, port), shown, hostPort(host, port))}
}

// dialChecked opens another connection to host:port through g, with every
// check of the first one (the name's allowance, the address classes). Its
// error reaches the client, so a refusal's Detail (a decider's failure)
// goes to logf only.
func dialChecked(ctx context.Context, g *egress.Gate, host string, port uint16, logf func(string, ...any)) (net.Conn, error) {
	if g == nil {
		return nil, errors.New("sandgate has no policy configured, so nothing is allowed")
	}
	c, res, _, err := g.Connect(ctx, host, port)
	if !res.Decision.Allow {
		if c != nil {
			c.Close()
		}
		if res.Decision.Detail != "" && logf != nil {
			logf("proxy: another connection to %s for an inspected connection: %s", hostPort(host, port), res.Decision.Detail)
		}
		return nil, fmt.Errorf("refused: %s", res.Decision.Text)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}
