package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// frame feeds data to a new framer in pieces of size step (0: at once) and
// returns it and the bytes it let through.
func frame(data []byte, step int) (*requestFramer, int) {
	f := &requestFramer{maxHead: 1 << 16}
	passed := 0
	if step <= 0 {
		step = len(data) + 1
	}
	for len(data) > 0 {
		n := min(step, len(data))
		passed += f.feed(data[:n])
		data = data[n:]
	}
	return f, passed
}

func TestRequestFramer(t *testing.T) {
	get := "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"
	tests := []struct {
		name     string
		in       string
		reason   string // "" when nothing is wrong
		request  int    // the message the ambiguity is in
		passed   int    // bytes let through; -1: all
		requests int    // heads seen, when reason is ""
	}{
		{name: "two requests", in: get + get, passed: -1, requests: 2},
		{name: "bodies by length and by chunks", in: "POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" +
			"POST http://a/ HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n3;x=y\r\nabc\r\na \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n" + get,
			passed: -1, requests: 3},
		{name: "a tolerated empty line first", in: "\r\n" + get, passed: -1, requests: 1},
		{name: "CONNECT then tunnel bytes", in: "CONNECT a:443 HTTP/1.1\r\n\r\n\x16\x03\x01 anything\n\r\x00", passed: -1, requests: 1},
		{name: "CL and TE", in: get + "POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			reason: "both Content-Length and Transfer-Encoding", request: 2, passed: len(get) + 4},
		{name: "TE on HTTP/1.0", in: "POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", reason: "HTTP/1.0", request: 1, passed: 4},
		{name: "obs-fold", in: "GET http://a/ HTTP/1.1\r\nX: 1\r\n\t2\r\n\r\n", reason: "folding", request: 1, passed: 4},
		{name: "bare LF in the request line", in: "GET http://a/ HTTP/1.1\n\r\n", reason: "bare LF", request: 1, passed: 4},
		{name: "bad chunk after a good one", in: "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nzz\r\n",
			reason: "invalid chunk size", request: 1, passed: len("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")},
		{name: "chunk data too long", in: "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
			reason: "not followed by CRLF", request: 1, passed: len("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na")},
		{name: "CL with a sign", in: "POST http://a/ HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", reason: "plain decimal", request: 1, passed: 4},
		{name: "a name that is not a token", in: "GET http://a/ HTTP/1.1\r\nX(y): 1\r\n\r\n", reason: "malformed header", request: 1, passed: 4},
		{name: "not HTTP/1.x: left to net/http", in: "GET / HTTP/2.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", passed: -1, requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{0, 1, 3} {
				f, passed := frame([]byte(tt.in), step)
				want := tt.passed
				if want < 0 {
					want = len(tt.in)
				}
				// Cut in pieces, the bytes of a head before its bad line
				// have gone through already, but never the line itself.
				if (step == 0 || f.err == nil) && passed != want {
					t.Errorf("step %d: %d bytes let through, want %d", step, passed, want)
				}
				if step > 0 && f.err != nil && passed >= int(f.off) && passed > want {
					t.Errorf("step %d: %d bytes let through, the whole bad line (to %d) among them", step, passed, f.off)
				}
				if tt.reason == "" {
					if f.err != nil || f.requests != tt.requests {
						t.Errorf("step %d: error %v, %d requests; want none, %d", step, f.err, f.requests, tt.requests)
					}
					continue
				}
				if f.err == nil || !strings.Contains(f.err.reason, tt.reason) || f.err.request != tt.request {
					t.Errorf("step %d: error %+v, want %q in request %d", step, f.err, tt.reason, tt.request)
				}
			}
		})
	}
}

// FuzzRequestFramer checks that the framer's verdict does not depend on how
// the stream is cut, and that on streams it accepts it finds the same
// message boundaries as net/http.
func FuzzRequestFramer(f *testing.F) {
	for _, s := range []string{
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\nGET http://b/ HTTP/1.1\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET http://a/ HTTP/1.1\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\nGET http://a/ HTTP/1.1\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET http://a/ HTTP/1.1\nX: 1\r\n y\r\n\r\n",
		"CONNECT a:1 HTTP/1.1\r\n\r\n\x00\x01",
	} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		whole, passedWhole := frame(data, 0)
		cut, passedCut := frame(data, int(step))
		if (whole.err == nil) != (cut.err == nil) || whole.off != cut.off || whole.requests != cut.requests || whole.state != cut.state {
			t.Fatalf("whole: %+v at %d, %d requests; in pieces of %d: %+v at %d, %d requests", whole.err, whole.off, whole.requests, step, cut.err, cut.off, cut.requests)
		}
		if whole.err != nil && (whole.err.reason != cut.err.reason || whole.err.request != cut.err.request || whole.err.inBody != cut.err.inBody) {
			t.Fatalf("whole: %+v; in pieces: %+v", whole.err, cut.err)
		}
		if whole.err == nil && (passedWhole != len(data) || passedCut != len(data)) {
			t.Fatalf("let %d and %d of %d bytes through without an error", passedWhole, passedCut, len(data))
		}
		if whole.err != nil && (passedWhole > int(whole.err.at) || passedCut > max(passedWhole, int(whole.off)-1)) {
			t.Fatalf("let %d (in pieces %d) bytes through; the ambiguity is at %d, found at %d", passedWhole, passedCut, whole.err.at, whole.off)
		}
		if whole.err != nil || whole.state == passThrough {
			return
		}
		// net/http, reading the same stream, must find no more complete
		// messages than the framer began, and just as many when the
		// stream ends cleanly between two messages for both.
		br := bufio.NewReader(bytes.NewReader(data))
		n := 0
		clean := false
		for {
			if _, err := br.Peek(1); err == io.EOF {
				clean = true
				break
			}
			req, err := http.ReadRequest(br)
			if err != nil {
				break
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				break
			}
			n++
			if req.Method == http.MethodConnect {
				break
			}
		}
		atBoundary := whole.state == inHead && len(whole.line) == 0 && whole.headLen == 0
		if n > whole.requests || (clean && atBoundary && n != whole.requests) {
			t.Fatalf("net/http read %d whole requests (clean end %v), the framer began %d (at a boundary %v): %q", n, clean, whole.requests, atBoundary, data)
		}
	})
}
