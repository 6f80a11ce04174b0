package tlspeek

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port uint16
	}{
		{"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "example.com", 0},
		{"GET /a?b HTTP/1.1\r\nUser-Agent: x\r\nhOsT:   example.com:8080 \r\nAccept: */*\r\n\r\n", "example.com", 8080},
		{"POST /up HTTP/1.0\nHost: [2001:db8::1]:443\n\nbody", "2001:db8::1", 443},
		{"GET / HTTP/1.0\r\n\r\n", "", 0},
		{"GET http://abs.example:81/p HTTP/1.1\r\nHost: other.example\r\n\r\n", "abs.example", 81},
		{"GET http://abs.example?q HTTP/1.1\r\n\r\n", "abs.example", 0},
		{"CONNECT tunnel.example:443 HTTP/1.1\r\nHost: other.example\r\n\r\n", "tunnel.example", 443},
		{"OPTIONS * HTTP/1.1\r\nHost: 203.0.113.9\r\n\r\n", "203.0.113.9", 0},
	}
	for _, tc := range tests {
		req, err := ParseRequest([]byte(tc.in))
		if err != nil || req.Host != tc.host || req.Port != tc.port {
			t.Errorf("ParseRequest(%q) = %+v, %v; want host %q port %d", tc.in, req, err, tc.host, tc.port)
		}
		// Every proper prefix of the head is incomplete.
		head := tc.in[:strings.Index(tc.in, "\n\n")+2]
		if i := strings.Index(tc.in, "\r\n\r\n"); i >= 0 {
			head = tc.in[:i+4]
		}
		for cut := 1; cut < len(head); cut++ {
			if _, err := ParseRequest([]byte(head[:cut])); !errors.Is(err, ErrShort) {
				t.Errorf("ParseRequest(%q) = %v, want ErrShort", head[:cut], err)
				break
			}
		}
		got, read, err := ReadRequest(iotest.OneByteReader(strings.NewReader(tc.in+"more")), 0)
		if err != nil || got != req || string(read) != head {
			t.Errorf("ReadRequest(%q) = %+v, %q, %v; want the head read exactly", tc.in, got, read, err)
		}
	}
}

func TestParseRequestRefuses(t *testing.T) {
	tests := map[string]error{
		"SSH-2.0-OpenSSH_9.6\r\n": ErrNotHTTP,
		"GET / HTTP/2.0\r\n\r\n":  ErrNotHTTP,
		"GET /  HTTP/1.1\r\n\r\n": ErrNotHTTP,
		"GET\r\n\r\n":             ErrNotHTTP,
		"G(ET / HTTP/1.1":         ErrNotHTTP,
		"\x16\x03\x01":            ErrNotHTTP,
		"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n": ErrMalformed,
		"GET / HTTP/1.1\r\nHost: a.example\r\n folded\r\n\r\n":         ErrMalformed,
		"GET / HTTP/1.1\r\nno colon\r\n\r\n":                           ErrMalformed,
		"GET / HTTP/1.1\r\n: empty name\r\n\r\n":                       ErrMalformed,
		"GET / HTTP/1.1\r\nHost: user@a.example\r\n\r\n":               ErrMalformed,
		"GET / HTTP/1.1\r\nHost: a.example:0\r\n\r\n":                  ErrMalformed,
		"GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n":              ErrMalformed,
		"GET / HTTP/1.1\r\nHost: 2001:db8::1\r\n\r\n":                  ErrMalformed,
		"GET / HTTP/1.1\r\nHost: [2001:db8::1\r\n\r\n":                 ErrMalformed,
		"GET / HTTP/1.1\r\nHost: [2001:db8::1]x\r\n\r\n":               ErrMalformed,
		"GET / HTTP/1.1\r\nHost: :80\r\n\r\n":                          ErrMalformed,
		"GET / HTTP/1.1\r\nHost: a/b.example\r\n\r\n":                  ErrMalformed,
		"GET /\x01 HTTP/1.1\r\n\r\n":                                   ErrMalformed,
	}
	for in, want := range tests {
		if _, err := ParseRequest([]byte(in)); !errors.Is(err, want) {
			t.Errorf("ParseRequest(%q) = %v, want %v", in, err, want)
		}
	}
	_, read, err := ReadRequest(strings.NewReader("GET / HTTP/1.1\r\nX: "+strings.Repeat("a", 500)), 256)
	if !errors.Is(err, ErrTooLarge) || len(read) != 256 {
		t.Errorf("a long head: %d bytes, %v; want 256 and ErrTooLarge", len(read), err)
	}
}

// TestAgreesWithNetHTTP parses requests written by net/http.
func TestAgreesWithNetHTTP(t *testing.T) {
	for _, url := range []string{"http://example.com/", "http://example.com:8080/x?y=1", "http://[2001:db8::5]:81/"} {
		req, err := http.NewRequest("GET", url, strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := req.Write(&buf); err != nil {
			t.Fatal(err)
		}
		got, err := ParseRequest(buf.Bytes())
		if err != nil || got.Host != req.URL.Hostname() {
			t.Errorf("%s: %+v, %v; want host %q", url, got, err, req.URL.Hostname())
		}
		back, err := http.ReadRequest(bufio.NewReader(&buf))
		if err != nil || back.Host != req.Host {
			t.Errorf("%s: net/http reads host %q, %v", url, back.Host, err)
		}
	}
}
