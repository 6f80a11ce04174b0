package proxy

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// refusalTimeout bounds one polite refusal of a client over the limit.
const refusalTimeout = 2 * time.Second

const busyResponse = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\n" +
	"Content-Length: 47\r\n" +
	"\r\n" +
	"sandgate: too many connections open; try later\n"

// refusalWait is how long the accept loop waits for a refusal slot when all
// are in use, before it refuses without ceremony.
const refusalWait = 100 * time.Millisecond

// refuse answers a client that arrived while every connection slot was
// taken, and closes it: 503 for HTTP, and for SOCKS5 a general-failure reply
// once the client has sent its greeting and request. A bounded number of
// refusals (fdPlan.refusals) run at once, each for at most refusalTimeout;
// when they are all in use for refusalWait (the accept loop waits: clients
// wait in the listen queue meanwhile, holding no descriptor of ours), an
// HTTP client gets its 503 at once and a SOCKS5 client is closed without a
// reply.
func (s *Server) refuse(c net.Conn, socks bool) {
	s.refusalLog.note(s, socks, c.RemoteAddr())
	select {
	case s.refusals <- struct{}{}:
	case <-time.After(refusalWait):
		if !socks {
			// A fresh socket's send buffer is empty, so this write does not wait.
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			io.WriteString(c, busyResponse)
		}
		closeGently(c, time.Millisecond)
		return
	}
	go func() {
		defer func() { <-s.refusals }()
		c.SetDeadline(time.Now().Add(refusalTimeout))
		if !socks {
			if _, err := io.WriteString(c, busyResponse); err == nil {
				closeGently(c, refusalTimeout)
				return
			}
		} else if _, ok := s.socksHandshake(c, c.RemoteAddr().String()); ok {
			writeSOCKSReply(c, repGeneralFailure, nil)
		}
		c.Close()
	}()
}

// closeGently half-closes c and reads what the client sends for up to wait
// (at most 64 KiB) before closing it: closing a socket with unread bytes
// resets the connection, which can destroy the answer before the client
// reads it.
func closeGently(c net.Conn, wait time.Duration) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.SetReadDeadline(time.Now().Add(wait))
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
	c.Close()
}

// refusalLog says that clients are refused at most once a second, with a
// count of those it did not name.
type refusalLog struct {
	mu     sync.Mutex
	last   time.Time
	unsaid int
}

func (l *refusalLog) note(s *Server, socks bool, addr net.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last) < time.Second {
		l.unsaid++
		return
	}
	proto := "HTTP"
	if socks {
		proto = "SOCKS"
	}
	more := ""
	if l.unsaid > 0 {
		more = fmt.Sprintf(" (and %d more clients since the last such line)", l.unsaid)
	}
	s.logf("proxy: refusing %s client %s: %d connections open (the limit)%s", proto, addr, s.lim.MaxConns, more)
	l.last, l.unsaid = now, 0
}
