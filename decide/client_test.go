package decide

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		in, post, socket string
		err              string // substring of the error; "" means valid
	}{
		{in: "http://127.0.0.1:8700/decide", post: "http://127.0.0.1:8700/decide"},
		{in: "http://127.0.0.1:8700", post: "http://127.0.0.1:8700"},
		{in: "http://127.9.9.9:1/x?y=1", post: "http://127.9.9.9:1/x?y=1"},
		{in: "http://[::1]:8700/d", post: "http://[::1]:8700/d"},
		{in: "http://localhost:8700/d", post: "http://localhost:8700/d"},
		{in: "unix:/run/decider.sock", post: "http://decider/", socket: "/run/decider.sock"},
		{in: "unix:relative.sock", err: "absolute path"},
		{in: "unix:", err: "absolute path"},
		{in: "https://127.0.0.1:8700/", err: `scheme "https"`},
		{in: "127.0.0.1:8700", err: "127.0.0.1:8700"},
		{in: "ftp://127.0.0.1:21/", err: `scheme "ftp"`},
		{in: "", err: `scheme ""`},
		{in: "http://203.0.113.5:8700/", err: "loopback"},
		{in: "http://[2001:db8::1]:8700/", err: "loopback"},
		{in: "http://decider.example:8700/", err: "loopback"},
		{in: "http://127.0.0.1.example:8700/", err: "loopback"},
		{in: "http://0.0.0.0:8700/", err: "loopback"},
		{in: "http://127.0.0.1/", err: "name the port"},
		{in: "http://u:p@127.0.0.1:8700/", err: "credentials"},
		{in: "http://127.0.0.1:port/", err: "decider"},
		{in: "http://%zz", err: "decider"},
	}
	for _, c := range cases {
		post, socket, err := ParseURL(c.in)
		if c.err == "" {
			if err != nil || post != c.post || socket != c.socket {
				t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", c.in, post, socket, err, c.post, c.socket)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseURL(%q) error = %v, want one containing %q", c.in, err, c.err)
		}
		if err != nil && !strings.Contains(err.Error(), "decider") {
			t.Errorf("ParseURL(%q) error %q does not say it is about the decider", c.in, err)
		}
	}
	if _, err := NewClient("http://203.0.113.5:1/", 0); err == nil {
		t.Error("NewClient accepted a non-loopback URL")
	}
}

// answering returns a handler that records the question and answers with
// status and body.
func answering(t *testing.T, status int, body string, got *atomic.Pointer[Question]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s with Content-Type %q, want POST application/json", r.Method, r.Header.Get("Content-Type"))
		}
		var wq wireQuestion
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&wq); err != nil {
			t.Errorf("question body: %v", err)
		}
		q := Question(wq)
		if got != nil {
			got.Store(&q)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

func loopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.URL + "/decide"
}

func unixServer(t *testing.T, h http.Handler) string {
	t.Helper()
	// A short directory: unix socket paths are limited to ~108 bytes.
	dir, err := os.MkdirTemp("", "dec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "unix:" + path
}

var testQuestion = Question{Run: "run-7", Protocol: "connect", Host: "notlisted.example", Port: 443}

func TestClientAnswers(t *testing.T) {
	// Proxy variables must not be used for the decider.
	t.Setenv("HTTP_PROXY", "http://192.0.2.1:9")
	t.Setenv("http_proxy", "http://192.0.2.1:9")
	cases := []struct {
		name   string
		status int
		body   string
		want   Answer
		err    string
	}{
		{"allow run", 200, `{"decision":"allow","scope":"run"}`, Answer{Allow: true, Scope: ScopeRun}, ""},
		{"allow once", 200, `{"decision":"allow"}`, Answer{Allow: true, Scope: ScopeOnce}, ""},
		{"deny", 200, `{"decision":"deny"}`, Answer{}, ""},
		{"allow with HTTP 500", 500, `{"decision":"allow","scope":"run"}`, Answer{}, "HTTP 500"},
		{"allow with HTTP 201", 201, `{"decision":"allow"}`, Answer{}, "HTTP 201"},
		{"malformed", 200, `{"decision":"allow",`, Answer{}, "malformed answer"},
		{"empty", 200, ``, Answer{}, "malformed answer"},
		{"huge", 200, `{"decision":"allow"}` + strings.Repeat(" ", maxAnswer), Answer{}, "too long"},
	}
	servers := []struct {
		name  string
		start func(*testing.T, http.Handler) string
	}{{"loopback", loopbackServer}, {"unix", unixServer}}
	for _, s := range servers {
		for _, c := range cases {
			t.Run(s.name+"/"+c.name, func(t *testing.T) {
				var got atomic.Pointer[Question]
				cl, err := NewClient(s.start(t, answering(t, c.status, c.body, &got)), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				ans, err := cl.Decide(context.Background(), testQuestion)
				if q := got.Load(); q == nil || *q != testQuestion {
					t.Errorf("the decider got %+v, want %+v", q, testQuestion)
				}
				if c.err == "" {
					if err != nil || ans != c.want {
						t.Fatalf("Decide = %+v, %v; want %+v", ans, err, c.want)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), c.err) || ans.Allow {
					t.Fatalf("Decide = %+v, %v; want no allow and an error containing %q", ans, err, c.err)
				}
			})
		}
	}
}

func TestClientNeverFollowsRedirects(t *testing.T) {
	var followed atomic.Bool
	target := loopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
		_, _ = io.WriteString(w, `{"decision":"allow","scope":"run"}`)
	}))
	url := loopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	}))
	cl, err := NewClient(url, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := cl.Decide(context.Background(), testQuestion)
	if err == nil || ans.Allow || !strings.Contains(err.Error(), "HTTP 307") {
		t.Fatalf("Decide = %+v, %v; want an HTTP 307 error", ans, err)
	}
	if followed.Load() {
		t.Fatal("the client followed the redirect")
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then a client that leaves cancels r's context
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	for _, start := range []func(*testing.T, http.Handler) string{loopbackServer, unixServer} {
		cl, err := NewClient(start(t, slow), 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		ans, err := cl.Decide(context.Background(), testQuestion)
		if err == nil || ans.Allow || !strings.Contains(err.Error(), "did not answer within 100ms") {
			t.Fatalf("Decide = %+v, %v; want a timeout error", ans, err)
		}
		if d := time.Since(t0); d > 3*time.Second {
			t.Fatalf("the timeout took %v", d)
		}
	}
}

func TestClientUnreachable(t *testing.T) {
	dir := t.TempDir()
	for _, raw := range []string{"unix:" + filepath.Join(dir, "absent.sock"), closedLoopbackURL(t)} {
		cl, err := NewClient(raw, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ans, err := cl.Decide(context.Background(), testQuestion)
		if err == nil || ans.Allow || !strings.Contains(err.Error(), "asking the decider") {
			t.Fatalf("%s: Decide = %+v, %v; want an error", raw, ans, err)
		}
	}
}

func TestClientCallerCancel(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	url := loopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	cl, err := NewClient(url, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if ans, err := cl.Decide(ctx, testQuestion); err == nil || ans.Allow {
		t.Fatalf("Decide = %+v, %v; want an error after the caller cancelled", ans, err)
	}
}

// closedLoopbackURL returns a loopback URL where nothing listens.
func closedLoopbackURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/"
}
