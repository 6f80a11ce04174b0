package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// pairListener listens on a loopback port for a pair test.
func pairListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// pairHTTPStatus sends one request to an HTTP proxy listener and returns
// the status code.
func pairHTTPStatus(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial HTTP: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET http://pair.test/ HTTP/1.1\r\nHost: pair.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("HTTP response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pairSOCKSMethod sends a SOCKS5 greeting offering "no authentication" and
// returns the method the server picked.
func pairSOCKSMethod(t *testing.T, addr string) byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial SOCKS5: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{5, 1, 0})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		t.Fatalf("SOCKS5 method selection: %v", err)
	}
	return sel[1]
}

// TestServePair serves both protocols and shuts down without an error.
func TestServePair(t *testing.T) {
	hl, sl := pairListener(t), pairListener(t)
	p := New(Options{}).ServePair(hl, sl)
	if code := pairHTTPStatus(t, hl.Addr().String()); code != http.StatusForbidden {
		t.Errorf("HTTP status %d without a gate, want 403", code)
	}
	if m := pairSOCKSMethod(t, sl.Addr().String()); m != 0 {
		t.Errorf("SOCKS5 method %#x, want 0 (no authentication)", m)
	}
	if err := p.Shutdown(5 * time.Second); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case <-p.Failed():
		t.Error("Failed is closed after a Shutdown")
	default:
	}
	if err := p.Err(); err != nil {
		t.Errorf("Err after Shutdown = %v, want nil", err)
	}
	if c, err := net.DialTimeout("tcp", sl.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the SOCKS5 listener still accepts after Shutdown")
	}
}

// TestServePairUnexpectedStop: a listener closed behind the pair's back is
// reported once, says which protocol, and closes the other listener.
func TestServePairUnexpectedStop(t *testing.T) {
	hl, sl := pairListener(t), pairListener(t)
	p := New(Options{}).ServePair(hl, sl)
	sl.Close()
	select {
	case <-p.Failed():
	case <-time.After(5 * time.Second):
		t.Fatal("Failed not closed after the SOCKS5 listener was closed")
	}
	var se *ServeError
	if err := p.Err(); !errors.As(err, &se) || se.Proto != "SOCKS5" || !errors.Is(err, net.ErrClosed) ||
		!strings.HasPrefix(err.Error(), "SOCKS5 proxy: ") {
		t.Errorf("Err = %v, want a SOCKS5 *ServeError wrapping net.ErrClosed", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", hl.Addr().String(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the HTTP listener still accepts after the SOCKS5 one failed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Shutdown(5 * time.Second); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if se2 := p.Err(); se2 == nil || se2.(*ServeError).Proto != "SOCKS5" {
		t.Errorf("Err after Shutdown = %v, want the first failure kept", se2)
	}
}

// TestServePairShutdownDeadline: a client that keeps its connection open
// is closed when the grace period ends, and Shutdown returns then.
func TestServePairShutdownDeadline(t *testing.T) {
	sl := pairListener(t)
	p := New(Options{}).ServePair(nil, sl)
	c, err := net.DialTimeout("tcp", sl.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{5}) // half a greeting: the server waits for the rest
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	err = p.Shutdown(200 * time.Millisecond)
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("Shutdown took %v with a connection open, want about the 200ms grace", d)
	}
	if err == nil {
		t.Error("Shutdown = nil although it had to close an open connection")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the open connection was not closed by Shutdown")
	}
}
