package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// liveEnv is newEnv whose gate decides with a live policy made of
// testPolicy.
func liveEnv(t *testing.T) (*env, *egress.Live) {
	t.Helper()
	pol, err := policy.New(testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	live := egress.NewLive(pol)
	e := newEnv(t, func(o *Options) { o.Gate.Live = live })
	return e, live
}

// openConnect opens a CONNECT tunnel to host:port through e and checks
// that it echoes.
func openConnect(t *testing.T, e *env, host string, port uint16) net.Conn {
	t.Helper()
	c := dial(t, e.httpAddr)
	br := bufio.NewReader(c)
	target := net.JoinHostPort(host, portString(port))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %s", target, resp.Status)
	}
	if br.Buffered() != 0 {
		t.Fatalf("CONNECT %s: bytes after the response head", target)
	}
	echoCheck(t, c, "ping "+host)
	return c
}

// TestCutDeniedClosesTunnels opens CONNECT and SOCKS5 tunnels, denies one
// destination through the live policy and checks that exactly its tunnels
// are cut and audited as cut-denied with the new generation.
func TestCutDeniedClosesTunnels(t *testing.T) {
	e, live := liveEnv(t)
	port := echoServer(t, "tcp4", "127.0.0.1:0")

	viaConnect := openConnect(t, e, "allowed.test", port)
	sc := e.socks(t)
	if code, _ := sc.connect("allowed.test", port); code != repSucceeded {
		t.Fatalf("SOCKS5 CONNECT allowed.test: reply %d", code)
	}
	echoCheck(t, sc.c, "ping socks")
	other := openConnect(t, e, "127.0.0.1", port)

	// An allow cuts nothing.
	gen, err := live.Allow("more.test")
	if err != nil || gen != 1 {
		t.Fatalf("Allow: gen %d, %v", gen, err)
	}
	echoCheck(t, viaConnect, "still open")

	gen, err = live.Deny("allowed.test")
	if err != nil || gen != 2 {
		t.Fatalf("Deny: gen %d, %v", gen, err)
	}
	if !peerClosed(viaConnect) {
		t.Errorf("the CONNECT tunnel to allowed.test is still open after the deny")
	}
	if !sc.closed() {
		t.Errorf("the SOCKS5 tunnel to allowed.test is still open after the deny")
	}
	echoCheck(t, other, "the other destination is not cut")

	cut := 0
	for _, ev := range waitEvents(t, e.log, 2, func(ev audit.Event) bool { return ev.Reason == audit.ReasonCutDenied }) {
		cut++
		if ev.Host != "allowed.test" || ev.Port != port || ev.Gen != 2 || ev.Decision != audit.DecisionAllow {
			t.Errorf("cut event %+v: want allowed.test:%d, gen 2, decision allow", ev, port)
		}
		if ev.BytesUp == 0 || ev.BytesDown == 0 {
			t.Errorf("cut event %+v lost its byte counts", ev)
		}
	}
	if cut != 2 {
		t.Errorf("%d cut-denied events, want 2", cut)
	}
	// The tunnels are gone: cutting again finds nothing.
	p, g := live.Current()
	if n := e.srv.CutDenied(p, g); n != 0 {
		t.Errorf("a second CutDenied cut %d tunnels", n)
	}
	// A new tunnel to the denied destination is refused by the gate.
	c := dial(t, e.httpAddr)
	br := bufio.NewReader(c)
	target := net.JoinHostPort("allowed.test", portString(port))
	resp, _ := roundTrip(t, c, br, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Proxy-Error") != "blocked-by-denylist" {
		t.Errorf("CONNECT after the deny: %s %q", resp.Status, resp.Header.Get("X-Proxy-Error"))
	}
}

// TestCutDeniedOnlyDenyEntries checks that CutDenied cuts only what a deny
// entry refuses: a destination merely not on a policy's allow list stays.
func TestCutDeniedOnlyDenyEntries(t *testing.T) {
	e, _ := liveEnv(t)
	port := echoServer(t, "tcp4", "127.0.0.1:0")
	c := openConnect(t, e, "allowed.test", port)
	empty, err := policy.New(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.srv.CutDenied(empty, 7); n != 0 {
		t.Errorf("CutDenied with an empty policy cut %d tunnels", n)
	}
	echoCheck(t, c, "open")
	deny, err := empty.WithDeny("**.allowed.test")
	if err != nil {
		t.Fatal(err)
	}
	if n := e.srv.CutDenied(deny, 8); n != 1 {
		t.Errorf("CutDenied with a **.allowed.test deny cut %d tunnels, want 1", n)
	}
	if !peerClosed(c) {
		t.Errorf("the tunnel is still open")
	}
}

// TestShutdownEndsLiveWatch checks that a server that was shut down no
// longer follows the live policy (its watch is gone).
func TestShutdownEndsLiveWatch(t *testing.T) {
	pol, err := policy.New(testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	live := egress.NewLive(pol)
	srv := New(Options{Gate: &egress.Gate{Live: live, Resolver: testResolver()}})
	called := false
	real := srv.stopLive
	srv.stopLive = func() { called = true; real() }
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !called {
		t.Errorf("Shutdown did not end the live watch")
	}
}

// waitEvents waits for n events that match and returns them.
func waitEvents(t *testing.T, l *eventLog, n int, match func(audit.Event) bool) []audit.Event {
	t.Helper()
	var got []audit.Event
	for i := 0; i < 500; i++ {
		got = got[:0]
		for _, ev := range l.all() {
			if match(ev) {
				got = append(got, ev)
			}
		}
		if len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d matching events, want %d; have %+v", len(got), n, l.all())
	return nil
}
