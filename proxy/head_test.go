package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
)

// trickleServer accepts connections, reads the request head, and then sends
// an unfinished response head one byte every interval until the connection
// fails. It returns its port and a channel that receives the time each
// connection was seen to close.
func trickleServer(t *testing.T, interval time.Duration) (uint16, <-chan time.Time) {
	t.Helper()
	closed := make(chan time.Time, 4)
	stop := make(chan struct{})
	port := serveConns(t, "tcp4", "127.0.0.1:0", func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		head := "HTTP/1.1 200 OK\r\nX-Slow: " + strings.Repeat("z", 1<<20)
		for i := 0; i < len(head); i++ {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte{head[i]}); err != nil {
				closed <- time.Now()
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
		}
	})
	t.Cleanup(func() { close(stop) }) // runs before serveConns waits
	return port, closed
}

// TestResponseHeadTimeout: an upstream that trickles an unfinished response
// head keeps resetting the idle timeout, but not the response-head timeout.
func TestResponseHeadTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.ResponseHeadTimeout = 400 * time.Millisecond
		o.Limits.IdleTimeout = 10 * time.Second
	})
	port, upstreamClosed := trickleServer(t, 20*time.Millisecond)
	c := dial(t, e.httpAddr)
	start := time.Now()
	resp, body := roundTrip(t, c, bufio.NewReader(c), "GET http://allowed.test:"+portString(port)+"/slow HTTP/1.1\r\nHost: x\r\n\r\n")
	took := time.Since(start)
	if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("X-Proxy-Error") != "upstream-timeout" {
		t.Fatalf("status %d, X-Proxy-Error %q, body %q; want 504 upstream-timeout", resp.StatusCode, resp.Header.Get("X-Proxy-Error"), body)
	}
	if took < 350*time.Millisecond || took > 5*time.Second {
		t.Errorf("answered after %v, want about 400ms", took)
	}
	ev := e.log.wait(t, "allowed.test", port)
	if ev.Decision != audit.DecisionAllow || ev.Reason != audit.ReasonUpstreamTimeout {
		t.Errorf("event %+v, want allow / %s", ev, audit.ReasonUpstreamTimeout)
	}
	select {
	case <-upstreamClosed:
	case <-time.After(5 * time.Second):
		t.Error("the upstream connection was not closed after the timeout")
	}
}

// TestResponseHeadTimeoutDefault: the default is finite and Limits says so.
func TestResponseHeadTimeoutDefault(t *testing.T) {
	l := Limits{}.WithDefaults()
	if l.ResponseHeadTimeout != DefaultResponseHeadTimeout || DefaultResponseHeadTimeout <= 0 || DefaultResponseHeadTimeout > 5*time.Minute {
		t.Errorf("default response-head timeout %v (const %v)", l.ResponseHeadTimeout, DefaultResponseHeadTimeout)
	}
	s := New(Options{})
	if s.transport.ResponseHeaderTimeout != DefaultResponseHeadTimeout {
		t.Errorf("transport waits %v for a response head, want %v", s.transport.ResponseHeaderTimeout, DefaultResponseHeadTimeout)
	}
}

// oneByteConn returns its data one byte per Read.
type oneByteConn struct {
	net.Conn
	data  []byte
	reads int
}

func (c *oneByteConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	c.reads++
	p[0] = c.data[0]
	c.data = c.data[1:]
	return 1, nil
}

func (c *oneByteConn) SetReadDeadline(time.Time) error { return nil }

// TestHeadOneByteAtATimeIsLinear feeds a long response head to idleConn one
// byte per read and counts the bytes its head scanner examines: linear work
// examines each byte about once, while re-parsing the head so far on every
// read (as before) would examine about n²/2.
func TestHeadOneByteAtATimeIsLinear(t *testing.T) {
	for _, n := range []int{4 << 10, 256 << 10} {
		head := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\n" +
			"X-Pad: " + strings.Repeat("p", n) + "\r\n" +
			"Connection: X-Other\r\n\r\nbody"
		src := &oneByteConn{data: []byte(head)}
		ic := &idleConn{Conn: src, idle: time.Minute}
		var b [64]byte
		for {
			if _, err := ic.Read(b[:]); err != nil {
				break
			}
		}
		if src.reads != len(head) {
			t.Fatalf("n=%d: %d reads for %d bytes", n, src.reads, len(head))
		}
		if got := strings.Join(ic.connectionTokens(), ","); got != "close,X-Hop,X-Other" {
			t.Errorf("n=%d: tokens %q", n, got)
		}
		if !ic.head.done {
			t.Errorf("n=%d: final head not seen", n)
		}
		headLen := len(head) - len("body")
		if ic.head.scanned != headLen {
			t.Errorf("n=%d: scanner examined %d bytes for a %d-byte head, want each byte once", n, ic.head.scanned, headLen)
		}
	}
}

// TestHeadScannerAllocations: feeding a head in one-byte pieces allocates
// about as often as growing one buffer, not once per piece.
func TestHeadScannerAllocations(t *testing.T) {
	head := []byte("HTTP/1.1 200 OK\r\nX-Pad: " + strings.Repeat("p", 64<<10) + "\r\nConnection: a\r\n\r\n")
	allocs := testing.AllocsPerRun(5, func() {
		var h headScanner
		for i := range head {
			h.feed(head[i : i+1])
		}
		if !h.done || len(h.tokens) != 1 {
			t.Fatalf("done %v tokens %q", h.done, h.tokens)
		}
	})
	if allocs > 100 {
		t.Errorf("%v allocations to feed a %d-byte head one byte at a time", allocs, len(head))
	}
}
