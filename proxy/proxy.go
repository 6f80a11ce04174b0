// Package proxy serves sandgate's HTTP/1.1 forward proxy and SOCKS5 proxy.
// Every request is decided by an egress.Gate and recorded as an audit.Event;
// allowed tunnels move bytes with the kernel's zero-copy splice path.
package proxy

// THIS FILE'S EXPORTED API IS AGREED. Implementations replace the panics.

import (
	"context"
	"net"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
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
	MaxConns       int           // default 4096: concurrent client connections; more are refused promptly
}

// Options configure a Server.
type Options struct {
	Gate        *egress.Gate
	Audit       audit.Sink   // nil records nothing
	Credentials *Credentials // nil: no authentication
	Limits      Limits
	Logf        func(format string, args ...any) // nil: silent
}

// Server serves both protocols; one Server may serve many listeners.
type Server struct { /* implementation */
}

// New returns a Server; it does not listen.
func New(opts Options) *Server { panic("todo") }

// ServeHTTP accepts HTTP proxy clients on ln until ln is closed or Shutdown is
// called. It returns nil after Shutdown.
func (s *Server) ServeHTTP(ln net.Listener) error { panic("todo") }

// ServeSOCKS accepts SOCKS5 clients on ln until ln is closed or Shutdown is
// called. It returns nil after Shutdown.
func (s *Server) ServeSOCKS(ln net.Listener) error { panic("todo") }

// Shutdown closes the listeners and waits for open connections to finish or
// for ctx to end, after which it closes them.
func (s *Server) Shutdown(ctx context.Context) error { panic("todo") }
