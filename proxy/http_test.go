package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
)

func TestHTTPForwardAllowed(t *testing.T) {
	e := newEnv(t)
	_, port := backend(t)
	c := dial(t, e.httpAddr)
	br := bufio.NewReader(c)
	target := "allowed.test:" + portString(port)

	// The Host header names another host: the target must come from the URI.
	resp, body := roundTrip(t, c, br, "POST http://"+target+"/p?q=1 HTTP/1.1\r\n"+
		"Host: evil.test\r\n"+
		"Connection: X-Hop, keep-alive\r\n"+
		"X-Hop: secret\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Upgrade: websocket\r\n"+
		"X-Keep: yes\r\n"+
		"Content-Length: 5\r\n\r\nhello")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	if body != "POST 5" {
		t.Errorf("body = %q, want %q", body, "POST 5")
	}
	if got := resp.Header.Get("X-Seen-Host"); got != target {
		t.Errorf("backend saw Host %q, want %q", got, target)
	}
	if got := resp.Header.Get("X-Seen-URI"); got != "/p?q=1" {
		t.Errorf("backend saw URI %q, want origin-form /p?q=1", got)
	}
	seen := resp.Header.Get("X-Seen-Headers")
	for _, h := range []string{"X-Hop", "Proxy-Connection", "Proxy-Authorization", "Keep-Alive", "Upgrade"} {
		if strings.Contains(seen, h) {
			t.Errorf("hop-by-hop header %s forwarded (backend saw %s)", h, seen)
		}
	}
	if !strings.Contains(seen, "X-Keep") {
		t.Errorf("end-to-end header X-Keep dropped (backend saw %s)", seen)
	}
	for _, h := range []string{"X-Backend-Hop", "Keep-Alive"} {
		if resp.Header.Get(h) != "" {
			t.Errorf("response hop-by-hop header %s forwarded", h)
		}
	}
	ev := e.log.wait(t, "allowed.test", port)
	want := audit.Event{Proto: "http", Host: "allowed.test", Port: port, Dialed: "127.0.0.1:" + portString(port),
		Decision: "allow", Reason: "allowed", BytesUp: 5, BytesDown: 6}
	if ev.Proto != want.Proto || ev.Dialed != want.Dialed || ev.Decision != want.Decision ||
		ev.Reason != want.Reason || ev.BytesUp != want.BytesUp || ev.BytesDown != want.BytesDown {
		t.Errorf("event = %+v, want %+v", ev, want)
	}
	if ev.Client != c.LocalAddr().String() || ev.Time.IsZero() || ev.Duration < 0 {
		t.Errorf("event client/time/duration wrong: %+v", ev)
	}
}

// TestHTTPClientThroughProxy uses net/http's own proxy support end to end.
func TestHTTPClientThroughProxy(t *testing.T) {
	e := newEnv(t)
	_, port := backend(t)
	proxyURL, err := url.Parse("http://" + e.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < 3; i++ {
		resp, err := client.Get("http://allowed.test:" + portString(port) + "/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "GET 0" {
			t.Fatalf("status %d body %q", resp.StatusCode, b)
		}
	}
}

func TestHTTPRefusals(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, host string
		port       uint16
		wantCode   int
		wantErr    string
		wantReason string
	}{
		{"denied name", "denied.test", 80, 403, "blocked-by-denylist", "denied"},
		{"name not on the allow list", "other.test", 80, 403, "blocked-by-allowlist", "not-allowed"},
		{"IP literal not allowed", "192.0.2.10", 80, 403, "blocked-by-allowlist", "not-allowed"},
		{"IPv6 literal not allowed", "2001:db8::10", 80, 403, "blocked-by-allowlist", "not-allowed"},
		{"loopback literal not allowed", "127.0.0.2", 80, 403, "", ""},
		{"allowed name resolving to loopback", "loopy.test", 80, 403, "blocked-by-address", "address-class:loopback"},
		{"mapped loopback literal", "::ffff:127.0.0.2", 80, 403, "", ""},
		{"numeric name", "2130706433", 80, 403, "blocked-by-address", "numeric-name"},
		{"allowed name that does not resolve", "nowhere.test", 80, 502, "resolve-failed", "resolve-failed"},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET", "CONNECT"} {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				c := dial(t, e.httpAddr)
				br := bufio.NewReader(c)
				hp := net.JoinHostPort(tt.host, portString(tt.port))
				raw := "GET http://" + hp + "/ HTTP/1.1\r\nHost: " + hp + "\r\n\r\n"
				if method == "CONNECT" {
					raw = "CONNECT " + hp + " HTTP/1.1\r\nHost: " + hp + "\r\n\r\n"
				}
				resp, body := roundTrip(t, c, br, raw)
				if resp.StatusCode != tt.wantCode {
					t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.wantCode, body)
				}
				got := resp.Header.Get("X-Proxy-Error")
				if tt.wantErr != "" && got != tt.wantErr {
					t.Errorf("X-Proxy-Error %q, want %q", got, tt.wantErr)
				}
				if !strings.HasPrefix(got, "blocked-by-") && tt.wantCode == 403 {
					t.Errorf("X-Proxy-Error %q is not a blocked-by- code", got)
				}
				if strings.TrimSpace(body) == "" {
					t.Errorf("empty refusal body")
				}
				proto := "http"
				if method == "CONNECT" {
					proto = "connect"
				}
				var ev audit.Event
				for _, x := range e.log.all() {
					if x.Proto == proto && x.Port == tt.port && strings.Contains(body, x.Text) && x.Text != "" {
						ev = x
					}
				}
				if ev.Decision != "deny" {
					t.Fatalf("no deny event with the body's text %q: %+v", body, e.log.all())
				}
				if tt.wantReason != "" && ev.Reason != tt.wantReason {
					t.Errorf("event reason %q, want %q", ev.Reason, tt.wantReason)
				}
			})
		}
	}
	for _, name := range []string{"denied.test", "other.test"} {
		if e.lookedUp(name) {
			t.Errorf("refused name %s reached the resolver: %v", name, e.resolver.Lookups())
		}
	}
	if !e.lookedUp("loopy.test") {
		t.Errorf("loopy.test was never resolved; the test does not test the address check")
	}
}

func TestHTTPBadRequests(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, raw string
		want      int
	}{
		{"origin-form", "GET /index.html HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
		{"origin-form with Host of allowed name", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
		{"https absolute-form", "GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
		{"ftp absolute-form", "GET ftp://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
		{"port out of range", "GET http://allowed.test:70000/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
		{"port zero", "GET http://allowed.test:0/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
		{"empty host", "GET http://:80/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
		{"CONNECT without port", "CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
		{"CONNECT port zero", "CONNECT allowed.test:0 HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
		{"CONNECT path", "CONNECT /x HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, e.httpAddr)
			resp, body := roundTrip(t, c, bufio.NewReader(c), tt.raw)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d (body %q)", resp.StatusCode, tt.want, body)
			}
		})
	}
	if n := len(e.resolver.Lookups()); n != 0 {
		t.Errorf("bad requests caused %d lookups", n)
	}
}

func TestHTTPHeaderLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.MaxHeaderBytes = 1024 })
	c := dial(t, e.httpAddr)
	big := strings.Repeat("a", 8<<10)
	io.WriteString(c, "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nX-Big: "+big+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

func TestHTTPHeaderTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.HeaderTimeout = 100 * time.Millisecond })
	c := dial(t, e.httpAddr)
	io.WriteString(c, "GET http://allowed.test/ HTTP/1.1\r\n") // never finished
	start := time.Now()
	if !peerClosed(c) {
		t.Fatal("connection with an unfinished head was not closed")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v, want about 100ms", d)
	}
}

func TestKeepAliveDecidedAnew(t *testing.T) {
	e := newEnv(t)
	_, port := backend(t)
	c := dial(t, e.httpAddr)
	br := bufio.NewReader(c)
	steps := []struct {
		host string
		want int
	}{
		{"allowed.test:" + portString(port), 200},
		{"denied.test:" + portString(port), 403},
		{"allowed.test:" + portString(port), 200},
		{"other.test:" + portString(port), 403},
	}
	for i, st := range steps {
		resp, body := roundTrip(t, c, br, "GET http://"+st.host+"/ HTTP/1.1\r\nHost: "+st.host+"\r\n\r\n")
		if resp.StatusCode != st.want {
			t.Fatalf("request %d to %s: status %d, want %d (%q)", i, st.host, resp.StatusCode, st.want, body)
		}
		if resp.Close {
			t.Fatalf("request %d: proxy closed the keep-alive connection", i)
		}
	}
	if e.lookedUp("denied.test") || e.lookedUp("other.test") {
		t.Errorf("refused names reached the resolver: %v", e.resolver.Lookups())
	}
}

func TestConnectTunnel(t *testing.T) {
	e := newEnv(t)
	port := echoServer(t, "tcp4", "127.0.0.1:0")
	c := dial(t, e.httpAddr)
	br := bufio.NewReader(c)
	target := "allowed.test:" + portString(port)
	// Bytes sent right behind the request head must reach the target too.
	io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\nearly ")
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT status %d", resp.StatusCode)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{br, c}
	got := make([]byte, len("early "))
	if _, err := io.ReadFull(rw, got); err != nil || string(got) != "early " {
		t.Fatalf("pipelined bytes: got %q, %v", got, err)
	}
	echoCheck(t, rw, "hello through the tunnel")
	e.tunnelsAreTCP(t)
	big := strings.Repeat("0123456789", 100_000)
	go io.WriteString(c, big)
	back := make([]byte, len(big))
	if _, err := io.ReadFull(rw, back); err != nil || string(back) != big {
		t.Fatalf("bulk echo failed: %v", err)
	}
	// Half-close: the echo server sees EOF, closes, and the tunnel ends.
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(rw); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v", rest, err)
	}
	ev := e.log.wait(t, "allowed.test", port)
	n := int64(len("early ") + len("hello through the tunnel") + len(big))
	if ev.Proto != "connect" || ev.Decision != "allow" || ev.BytesUp != n || ev.BytesDown != n {
		t.Errorf("event %+v, want connect allow with %d bytes each way", ev, n)
	}
	if ev.Dialed != "127.0.0.1:"+portString(port) {
		t.Errorf("dialed %q", ev.Dialed)
	}
}

func TestDialFailures(t *testing.T) {
	// A port with nothing listening: connection refused.
	ln := listen(t, "tcp4", "127.0.0.1:0")
	closedPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	e := newEnv(t)
	for _, method := range []string{"GET", "CONNECT"} {
		c := dial(t, e.httpAddr)
		hp := "allowed.test:" + portString(closedPort)
		raw := "GET http://" + hp + "/ HTTP/1.1\r\nHost: " + hp + "\r\n\r\n"
		if method == "CONNECT" {
			raw = "CONNECT " + hp + " HTTP/1.1\r\n\r\n"
		}
		resp, body := roundTrip(t, c, bufio.NewReader(c), raw)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s to a closed port: status %d, want 502 (%q)", method, resp.StatusCode, body)
		}
	}

	slow := newEnv(t, func(o *Options) {
		g := *o.Gate
		g.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		o.Gate = &g
		o.Limits.DialTimeout = 50 * time.Millisecond
	})
	for _, method := range []string{"GET", "CONNECT"} {
		c := dial(t, slow.httpAddr)
		raw := "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
		if method == "CONNECT" {
			raw = "CONNECT allowed.test:443 HTTP/1.1\r\n\r\n"
		}
		resp, body := roundTrip(t, c, bufio.NewReader(c), raw)
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("%s with a dial that times out: status %d, want 504 (%q)", method, resp.StatusCode, body)
		}
	}
	ev := slow.log.wait(t, "allowed.test", 443)
	if ev.Reason != audit.ReasonDialTimeout || ev.Decision != "allow" {
		t.Errorf("timeout event %+v", ev)
	}
}

func TestHTTPCredentials(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Credentials = &Credentials{User: "u", Password: "p:w"} })
	_, port := backend(t)
	echo := echoServer(t, "tcp4", "127.0.0.1:0")
	basic := func(s string) string {
		return "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(s)) + "\r\n"
	}
	tests := []struct {
		name, auth string
		want       int
	}{
		{"missing", "", 407},
		{"wrong password", basic("u:p"), 407},
		{"wrong user", basic("x:p:w"), 407},
		{"not basic", "Proxy-Authorization: Bearer u:p:w\r\n", 407},
		{"bad base64", "Proxy-Authorization: Basic !!!\r\n", 407},
		{"right", basic("u:p:w"), 200},
		{"right, scheme in lower case", "Proxy-Authorization: basic " + base64.StdEncoding.EncodeToString([]byte("u:p:w")) + "\r\n", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, e.httpAddr)
			br := bufio.NewReader(c)
			hp := "allowed.test:" + portString(port)
			resp, _ := roundTrip(t, c, br, "GET http://"+hp+"/ HTTP/1.1\r\nHost: "+hp+"\r\n"+tt.auth+"\r\n")
			if resp.StatusCode != tt.want {
				t.Fatalf("GET status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 407 && !strings.HasPrefix(resp.Header.Get("Proxy-Authenticate"), "Basic ") {
				t.Errorf("407 without a Basic challenge: %q", resp.Header.Get("Proxy-Authenticate"))
			}
			if tt.want == 200 && strings.Contains(resp.Header.Get("X-Seen-Headers"), "Proxy-Authorization") {
				t.Errorf("credentials forwarded to the origin")
			}
			hp = "allowed.test:" + portString(echo)
			io.WriteString(c, "CONNECT "+hp+" HTTP/1.1\r\n"+tt.auth+"\r\n")
			resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("CONNECT status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 200 {
				echoCheck(t, struct {
					io.Reader
					io.Writer
				}{br, c}, "authorised")
			}
		})
	}
}

func TestHTTPMaxConns(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.MaxConns = 1 })
	first := dial(t, e.httpAddr)
	br := bufio.NewReader(first)
	// The first connection holds the only slot (keep-alive).
	resp, _ := roundTrip(t, first, br, "GET http://other.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n")
	if resp.StatusCode != 403 {
		t.Fatalf("first connection: status %d", resp.StatusCode)
	}
	second := dial(t, e.httpAddr)
	resp, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatalf("second connection: %v", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second connection: status %d, want 503", resp.StatusCode)
	}
	// SOCKS shares the limit: the client gets a general-failure reply to
	// its request and the connection is closed.
	s := e.socks(t)
	if rep, _ := s.connect("allowed.test", 80); rep != repGeneralFailure {
		t.Errorf("SOCKS connection over the limit: reply %d, want %d (general failure)", rep, repGeneralFailure)
	}
	if !s.closed() {
		t.Error("SOCKS connection over the limit was not closed")
	}
	// Closing the first frees the slot.
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.active.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	third := dial(t, e.httpAddr)
	resp, _ = roundTrip(t, third, bufio.NewReader(third), "GET http://other.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n")
	if resp.StatusCode != 403 {
		t.Fatalf("after the slot was freed: status %d, want 403 from the policy", resp.StatusCode)
	}
}

func TestTunnelIdleTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.IdleTimeout = time.Second })
	port := echoServer(t, "tcp4", "127.0.0.1:0")
	open := func() (net.Conn, io.ReadWriter) {
		c := dial(t, e.httpAddr)
		br := bufio.NewReader(c)
		io.WriteString(c, "CONNECT allowed.test:"+portString(port)+" HTTP/1.1\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		return c, struct {
			io.Reader
			io.Writer
		}{br, c}
	}

	// Traffic keeps a tunnel open well past the idle timeout.
	_, rw := open()
	for i := 0; i < 8; i++ {
		echoCheck(t, rw, "tick")
		time.Sleep(100 * time.Millisecond)
	}

	// An idle tunnel is closed.
	c, _ := open()
	start := time.Now()
	if !peerClosed(c) {
		t.Fatal("idle tunnel was not closed")
	}
	if d := time.Since(start); d < 800*time.Millisecond || d > 4*time.Second {
		t.Errorf("idle tunnel closed after %v, want about 1s", d)
	}
}

func TestShutdownClosesTunnels(t *testing.T) {
	e := newEnv(t)
	port := echoServer(t, "tcp4", "127.0.0.1:0")
	c := dial(t, e.httpAddr)
	br := bufio.NewReader(c)
	io.WriteString(c, "CONNECT allowed.test:"+portString(port)+" HTTP/1.1\r\n\r\n")
	if resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	s := e.socks(t)
	if rep, _ := s.connect("allowed.test", port); rep != repSucceeded {
		t.Fatalf("SOCKS reply %d", rep)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := e.srv.Shutdown(ctx)
	if err == nil {
		t.Fatal("Shutdown with open tunnels and an expiring context returned nil")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if !peerClosed(c) || !s.closed() {
		t.Error("Shutdown left a tunnel open")
	}
	if _, err := net.DialTimeout("tcp", e.httpAddr, time.Second); err == nil {
		t.Error("HTTP listener still accepts after Shutdown")
	}
	// Both tunnels are recorded when closed.
	e.log.wait(t, "allowed.test", port)
	deadline := time.Now().Add(5 * time.Second)
	for len(e.log.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(e.log.all()); n != 2 {
		t.Errorf("%d events after shutdown, want 2", n)
	}
}

func TestShutdownWaitsForIdleServer(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown of an idle server: %v", err)
	}
	// Serving after Shutdown returns at once.
	ln := listen(t, "tcp4", "127.0.0.1:0")
	if err := e.srv.ServeSOCKS(ln); err != nil {
		t.Errorf("ServeSOCKS after Shutdown = %v", err)
	}
	ln2 := listen(t, "tcp4", "127.0.0.1:0")
	if err := e.srv.ServeHTTP(ln2); err != nil {
		t.Errorf("ServeHTTP after Shutdown = %v", err)
	}
}

func TestNoGateRefusesEverything(t *testing.T) {
	log := &eventLog{}
	s := New(Options{Audit: log})
	ln := listen(t, "tcp4", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- s.ServeHTTP(ln) }()
	c := dial(t, ln.Addr().String())
	resp, _ := roundTrip(t, c, bufio.NewReader(c), "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
	if resp.StatusCode != 403 {
		t.Errorf("status %d without a gate, want 403", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("ServeHTTP = %v", err)
	}
}

// TestTunnelOneWayTrafficIsNotIdle: bytes moving in one direction only keep
// the tunnel open; once they stop, the idle timeout closes it.
func TestTunnelOneWayTrafficIsNotIdle(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.IdleTimeout = time.Second })
	sink := listen(t, "tcp4", "127.0.0.1:0")
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	port := uint16(sink.Addr().(*net.TCPAddr).Port)
	c := dial(t, e.httpAddr)
	br := bufio.NewReader(c)
	io.WriteString(c, "CONNECT allowed.test:"+portString(port)+" HTTP/1.1\r\n\r\n")
	if resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	for i := 0; i < 10; i++ {
		if _, err := io.WriteString(c, "upload "); err != nil {
			t.Fatalf("write %d: tunnel closed while one direction was busy: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	if !peerClosed(c) {
		t.Fatal("tunnel not closed after the traffic stopped")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("closed %v after the traffic stopped, want about 1s", d)
	}
	ev := e.log.wait(t, "allowed.test", port)
	if ev.BytesUp != 70 || ev.BytesDown != 0 {
		t.Errorf("event bytes up %d down %d, want 70 and 0", ev.BytesUp, ev.BytesDown)
	}
}

// TestTunnelStalledTargetIsClosed: a target that accepts but never reads
// does not pin a tunnel forever.
func TestTunnelStalledTargetIsClosed(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.IdleTimeout = 300 * time.Millisecond })
	stuck := listen(t, "tcp4", "127.0.0.1:0")
	held := make(chan net.Conn, 1)
	go func() {
		c, err := stuck.Accept()
		if err == nil {
			held <- c // never read
		}
	}()
	t.Cleanup(func() {
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})
	port := uint16(stuck.Addr().(*net.TCPAddr).Port)
	c := dial(t, e.httpAddr)
	br := bufio.NewReader(c)
	io.WriteString(c, "CONNECT allowed.test:"+portString(port)+" HTTP/1.1\r\n\r\n")
	if resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(8 * time.Second):
		t.Fatal("tunnel to a target that reads nothing stayed open")
	}
}
