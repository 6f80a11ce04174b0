package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
)

// realUpstream is a net/http server that records every request it is
// handed and every connection made to it.
type realUpstream struct {
	port    uint16
	mu      sync.Mutex
	seen    []string // "METHOD PATH complete|incomplete"
	conn    int
	started int // handlers begun
}

func newRealUpstream(t *testing.T) *realUpstream {
	u := &realUpstream{}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.started++
		u.mu.Unlock()
		_, err := io.ReadAll(r.Body)
		state := "complete"
		if err != nil {
			state = "incomplete"
		}
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.URL.Path+" "+state)
		u.mu.Unlock()
		io.WriteString(w, "upstream saw "+r.URL.Path)
	}))
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			u.mu.Lock()
			u.conn++
			u.mu.Unlock()
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	u.port = uint16(ts.Listener.Addr().(*net.TCPAddr).Port)
	return u
}

// requests returns what the upstream saw, once it has handled want requests
// (or 5s have passed) and a little longer, for any it should not see.
func (u *realUpstream) requests(want int) ([]string, int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		u.mu.Lock()
		n := len(u.seen)
		u.mu.Unlock()
		if n >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...), u.conn
}

// waitStarted waits until n upstream handlers have begun.
func (u *realUpstream) waitStarted(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u.mu.Lock()
		got := u.started
		u.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream began %d requests, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exchange writes raw to the proxy in parts, calling between before each
// part after the first, and reads responses until the proxy closes the
// connection.
func exchange(t *testing.T, addr string, between func(), parts ...string) (statuses []int, proxyErrs []string) {
	t.Helper()
	c := dial(t, addr)
	for i, p := range parts {
		if i > 0 {
			between()
		}
		if _, err := io.WriteString(c, p); err != nil {
			break // the proxy may close early
		}
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the proxy left the connection open after %v", statuses)
			}
			return statuses, proxyErrs
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		proxyErrs = append(proxyErrs, resp.Header.Get("X-Proxy-Error"))
	}
}

// TestSmugglingAgainstARealUpstream sends ambiguously framed requests that a
// lenient proxy would turn into a second request at a real HTTP server
// behind it; the proxy must refuse them with 400 before forwarding
// anything, and close the connection.
func TestSmugglingAgainstARealUpstream(t *testing.T) {
	e := newEnv(t)
	up := newRealUpstream(t)
	T := "allowed.test:" + portString(up.port)
	smuggled := "GET http://" + T + "/smuggled HTTP/1.1\r\nHost: " + T + "\r\n\r\n"
	post := "POST http://" + T + "/first HTTP/1.1\r\nHost: " + T + "\r\n"
	tests := []struct {
		name     string
		parts    []string
		statuses string   // the answers, in order
		seen     []string // what the upstream handled
		conns    int      // connections made to the upstream
		xerr     string   // X-Proxy-Error of the last answer
	}{
		{
			name:     "control: two honest pipelined requests both arrive",
			parts:    []string{post + "Content-Length: 5\r\n\r\nhello" + strings.Replace(smuggled, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)},
			statuses: "200 200", seen: []string{"POST /first complete", "GET /smuggled complete"}, conns: 2,
		},
		{
			name:     "Content-Length and Transfer-Encoding (CL.TE)",
			parts:    []string{post + "Content-Length: " + itoa(len("0\r\n\r\n")+len(smuggled)) + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "Transfer-Encoding and Content-Length (TE.CL)",
			parts:    []string{post + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + hexLen(smuggled) + "\r\n" + smuggled + "\r\n0\r\n\r\n"},
			statuses: "400",
		},
		{
			name:     "the same Content-Length twice",
			parts:    []string{post + "Content-Length: 0\r\nContent-Length: 0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "two different Content-Lengths",
			parts:    []string{post + "Content-Length: 0\r\nContent-Length: " + itoa(len(smuggled)) + "\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "Content-Length as a list",
			parts:    []string{post + "Content-Length: 0, 0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "Transfer-Encoding not ending in chunked",
			parts:    []string{post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "Transfer-Encoding twice",
			parts:    []string{post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "Transfer-Encoding folded onto the next line",
			parts:    []string{post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "Transfer-Encoding on HTTP/1.0",
			parts:    []string{"POST http://" + T + "/first HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "a header line ended by a bare LF",
			parts:    []string{post + "X-A: 1\nContent-Length: 0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "a bare CR in a header",
			parts:    []string{post + "X-A: 1\rContent-Length: 0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "a control character in a header",
			parts:    []string{post + "X-A: a\x01b\r\nContent-Length: 0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "white space before a header's colon",
			parts:    []string{post + "Content-Length : 0\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "a chunk size with 0x",
			parts:    []string{post + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" + smuggled},
			statuses: "400", xerr: "bad-request",
		},
		{
			name:     "a negative chunk size",
			parts:    []string{post + "Transfer-Encoding: chunked\r\n\r\n-1\r\n" + smuggled},
			statuses: "400", xerr: "bad-request",
		},
		{
			name:     "a chunk size too large",
			parts:    []string{post + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffff1\r\n" + smuggled},
			statuses: "400", xerr: "bad-request",
		},
		{
			name:     "chunk data not followed by CRLF",
			parts:    []string{post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n" + smuggled},
			statuses: "400", xerr: "bad-request",
		},
		{
			name:     "a chunk-size line ended by a bare LF",
			parts:    []string{post + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n" + smuggled},
			statuses: "400", xerr: "bad-request",
		},
		{
			name:     "a folded trailer",
			parts:    []string{post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n 2\r\n\r\n" + smuggled},
			statuses: "400", xerr: "bad-request",
		},
		{
			name:     "CONNECT with a body",
			parts:    []string{"CONNECT " + T + " HTTP/1.1\r\nContent-Length: " + itoa(len(smuggled)) + "\r\n\r\n" + smuggled},
			statuses: "400",
		},
		{
			name:     "an honest request, then an ambiguous one",
			parts:    []string{post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + "GET http://" + T + "/second HTTP/1.1\r\nHost: " + T + "\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n" + smuggled},
			statuses: "200 400", seen: []string{"POST /first complete"}, conns: 1,
		},
		{
			name: "a bad chunk that arrives after the head was forwarded",
			parts: []string{post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
				"zz\r\n" + smuggled},
			statuses: "400", seen: []string{"POST /first incomplete"}, conns: 1, xerr: "bad-request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up.mu.Lock()
			up.seen, up.conn, up.started = nil, 0, 0
			up.mu.Unlock()
			// A later part goes once the upstream has the request's head.
			statuses, xerrs := exchange(t, e.httpAddr, func() { up.waitStarted(t, 1) }, tt.parts...)
			if got := joinInts(statuses); got != tt.statuses {
				t.Errorf("answers %q, want %q", got, tt.statuses)
			}
			if tt.xerr != "" && (len(xerrs) == 0 || xerrs[len(xerrs)-1] != tt.xerr) {
				t.Errorf("X-Proxy-Error %q, want %q", xerrs, tt.xerr)
			}
			seen, conns := up.requests(len(tt.seen))
			if strings.Join(seen, ", ") != strings.Join(tt.seen, ", ") {
				t.Errorf("the upstream handled %q, want %q", seen, tt.seen)
			}
			if conns != tt.conns {
				t.Errorf("%d connections reached the upstream, want %d", conns, tt.conns)
			}
		})
	}
	// Refusals of heads are recorded with the target they named.
	found := false
	for _, ev := range e.log.all() {
		if ev.Reason == audit.ReasonBadRequest && ev.Host == "allowed.test" && ev.Port == up.port && strings.Contains(ev.Text, "Content-Length and Transfer-Encoding") {
			found = true
		}
	}
	if !found {
		t.Errorf("no bad-request event for the CL.TE request: %+v", e.log.all())
	}
}

func itoa(n int) string { return portString(uint16(n)) }

func hexLen(s string) string {
	const digits = "0123456789abcdef"
	n := len(s)
	out := ""
	for n > 0 {
		out = string(digits[n%16]) + out
		n /= 16
	}
	return out
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = itoa(n)
	}
	return strings.Join(s, " ")
}
