package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandgate/sandgate/decide"
	"github.com/sandgate/sandgate/policy"
)

// countingDecider answers with ans (or err) and counts the questions.
type countingDecider struct {
	n    atomic.Int32
	ans  decide.Answer
	err  error
	wait chan struct{} // when set, each question waits for it to close
	last atomic.Pointer[decide.Question]
}

func (c *countingDecider) Decide(ctx context.Context, q decide.Question) (decide.Answer, error) {
	c.n.Add(1)
	c.last.Store(&q)
	if c.wait != nil {
		select {
		case <-c.wait:
		case <-ctx.Done():
			return decide.Answer{}, ctx.Err()
		}
	}
	return c.ans, c.err
}

func askGate(t *testing.T, d decide.Decider) (*Gate, *Live) {
	t.Helper()
	g := newGate(t, &StaticResolver{Hosts: testHosts}, &recordingDialer{})
	live := NewLive(g.Policy)
	g.Live = live
	g.Ask = &Asker{Decider: d, Run: "run-1"}
	return g, live
}

func TestAskAllowOnceAsksEachTime(t *testing.T) {
	d := &countingDecider{ans: decide.Answer{Allow: true, Scope: decide.ScopeOnce}}
	g, live := askGate(t, d)
	ctx := decide.WithRequest(context.Background(), "http", "GET", "/x")
	for i := 0; i < 2; i++ {
		res := g.Decide(ctx, "notlisted.test", 443)
		if !res.Decision.Allow || res.Decision.Entry != EntryDecider {
			t.Fatalf("decision %d = %+v, want an allow by the decider", i, res.Decision)
		}
	}
	if n := d.n.Load(); n != 2 {
		t.Fatalf("asked %d times, want 2 (scope once)", n)
	}
	q := d.last.Load()
	want := decide.Question{Run: "run-1", Protocol: "http", Host: "notlisted.test", Port: 443, Method: "GET", Path: "/x"}
	if *q != want {
		t.Fatalf("question = %+v, want %+v", *q, want)
	}
	if gen, allow, _ := live.Show(); gen != 0 || len(allow) != 3 {
		t.Fatalf("a once allow changed the live policy: gen %d allow %v", gen, allow)
	}
}

func TestAskAllowRunAddsToLivePolicy(t *testing.T) {
	d := &countingDecider{ans: decide.Answer{Allow: true, Scope: decide.ScopeRun}}
	g, live := askGate(t, d)
	res := g.Decide(context.Background(), "notlisted.test", 443)
	if !res.Decision.Allow || res.Gen != 1 {
		t.Fatalf("first = %+v gen %d, want allow at gen 1", res.Decision, res.Gen)
	}
	if want := `notlisted.test:443 is allowed for the rest of the run by the decider (allow entry "notlisted.test:443" added to the live policy)`; res.Decision.Text != want {
		t.Errorf("first's text = %q, want %q", res.Decision.Text, want)
	}
	res = g.Decide(context.Background(), "notlisted.test", 443)
	if !res.Decision.Allow || res.Gen != 1 {
		t.Fatalf("second = %+v gen %d, want allow at gen 1", res.Decision, res.Gen)
	}
	if n := d.n.Load(); n != 1 {
		t.Fatalf("asked %d times, want 1 (scope run)", n)
	}
	if _, allow, _ := live.Show(); allow[len(allow)-1] != "notlisted.test:443" {
		t.Fatalf("live allow list = %v, want notlisted.test:443 added", allow)
	}
	// Another port of the same host is a new question.
	if res := g.Decide(context.Background(), "notlisted.test", 80); !res.Decision.Allow || d.n.Load() != 2 {
		t.Fatalf("other port: %+v after %d asks", res.Decision, d.n.Load())
	}
}

func TestAskRefusals(t *testing.T) {
	cases := []struct {
		name   string
		d      *countingDecider
		host   string
		reason string
		asked  int32
	}{
		{"deny", &countingDecider{ans: decide.Answer{}}, "notlisted.test", ReasonDeciderDenied, 1},
		{"error", &countingDecider{err: errors.New("boom")}, "notlisted.test", ReasonDeciderFailed, 1},
		{"deny-list hit never asked", &countingDecider{ans: decide.Answer{Allow: true}}, "denied.example.com", policy.ReasonDenied, 0},
		{"loopback literal never asked", &countingDecider{ans: decide.Answer{Allow: true}}, "127.0.0.1", policy.ReasonNotAllowed, 0},
		{"allowed name resolving to loopback", &countingDecider{ans: decide.Answer{Allow: true}}, "loop.example.com", policy.ReasonClassPrefix + policy.ClassLoopback, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, _ := askGate(t, c.d)
			res := g.Decide(context.Background(), c.host, 443)
			if res.Decision.Allow || res.Decision.Reason != c.reason {
				t.Fatalf("decision = %+v, want a refusal %q", res.Decision, c.reason)
			}
			if n := c.d.n.Load(); n != c.asked {
				t.Fatalf("asked %d times, want %d", n, c.asked)
			}
		})
	}
}

func TestAskAllowedNameStillClassChecked(t *testing.T) {
	d := &countingDecider{ans: decide.Answer{Allow: true}}
	g, _ := askGate(t, d)
	testHosts := map[string][]netip.Addr{"sneaky.test": addrs("169.254.169.254")}
	g.Resolver = &StaticResolver{Hosts: testHosts}
	res := g.Decide(context.Background(), "sneaky.test", 80)
	if res.Decision.Allow || d.n.Load() != 1 {
		t.Fatalf("decision = %+v after %d asks, want the metadata address refused after the ask", res.Decision, d.n.Load())
	}
}

func TestAskTimeoutDenies(t *testing.T) {
	d := &countingDecider{wait: make(chan struct{})}
	defer close(d.wait)
	g, _ := askGate(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res := g.Decide(ctx, "notlisted.test", 443)
	if res.Decision.Allow || res.Decision.Reason != ReasonDeciderFailed {
		t.Fatalf("decision = %+v, want decider-failed", res.Decision)
	}
}

func TestAskConcurrentIdenticalShareOneAsk(t *testing.T) {
	d := &countingDecider{wait: make(chan struct{}), ans: decide.Answer{Allow: true}}
	g, _ := askGate(t, d)
	var wg sync.WaitGroup
	var allowed atomic.Int32
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g.Decide(context.Background(), "notlisted.test", 443).Decision.Allow {
				allowed.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.n.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(d.wait)
	wg.Wait()
	if n := d.n.Load(); n != 1 || allowed.Load() != 5 {
		t.Fatalf("asked %d times, %d allowed; want 1 ask and 5 allows", n, allowed.Load())
	}
}

func TestLiveAllowDenyGenerations(t *testing.T) {
	live := NewLive(mustPolicy(t, policy.Config{Allow: []string{"a.test"}}))
	var seen []uint64
	stop := live.Watch(func(_ *policy.Policy, gen uint64) { seen = append(seen, gen) })
	g := &Gate{Live: live, Resolver: &StaticResolver{Hosts: map[string][]netip.Addr{"b.test": addrs("203.0.113.1"), "a.test": addrs("203.0.113.2")}},
		LocalAddrs: func() []netip.Addr { return nil }}
	if res := g.Decide(context.Background(), "b.test", 443); res.Decision.Allow {
		t.Fatalf("b.test allowed before the live allow")
	}
	if gen, err := live.Allow("b.test"); err != nil || gen != 1 {
		t.Fatalf("Allow = %d, %v", gen, err)
	}
	if res := g.Decide(context.Background(), "b.test", 443); !res.Decision.Allow || res.Gen != 1 {
		t.Fatalf("after allow: %+v gen %d", res.Decision, res.Gen)
	}
	if gen, err := live.Deny("a.test:443"); err != nil || gen != 2 {
		t.Fatalf("Deny = %d, %v", gen, err)
	}
	if res := g.Decide(context.Background(), "a.test", 443); res.Decision.Allow || res.Decision.Reason != policy.ReasonDenied || res.Gen != 2 {
		t.Fatalf("after deny: %+v gen %d", res.Decision, res.Gen)
	}
	if _, err := live.Allow("http://x/"); err == nil {
		t.Fatal("a malformed entry was accepted")
	}
	stop()
	live.Allow("c.test")
	gen, allow, deny := live.Show()
	if gen != 3 || len(allow) != 3 || len(deny) != 1 || len(seen) != 2 || seen[1] != 2 {
		t.Fatalf("Show = %d %v %v, watched %v", gen, allow, deny, seen)
	}
}

func TestAskLiterals(t *testing.T) {
	cases := []struct {
		host   string
		asked  int32
		allow  bool
		reason string
	}{
		{"203.0.113.50", 1, true, ""},                   // a public literal no IP rule names: asked
		{"2001:db8::50", 1, true, ""},                   // and in IPv6 (its run entry is [2001:db8::50]:443)
		{"10.0.0.1", 0, false, policy.ReasonNotAllowed}, // a private literal: never asked
		{"169.254.169.254", 0, false, policy.ReasonNotAllowed},
		{"203.0.113.66", 0, false, policy.ReasonDenied}, // on the deny list
	}
	for _, c := range cases {
		t.Run(c.host, func(t *testing.T) {
			d := &countingDecider{ans: decide.Answer{Allow: true, Scope: decide.ScopeRun}}
			g, live := askGate(t, d)
			g.LocalAddrs = func() []netip.Addr { return nil }
			res := g.Decide(context.Background(), c.host, 443)
			if res.Decision.Allow != c.allow || d.n.Load() != c.asked || (!c.allow && res.Decision.Reason != c.reason) {
				t.Fatalf("decision %+v after %d asks; want allow %v, reason %q, %d asks", res.Decision, d.n.Load(), c.allow, c.reason, c.asked)
			}
			if c.allow {
				// Allowed for the run: the live policy now names it, no second ask.
				if res := g.Decide(context.Background(), c.host, 443); !res.Decision.Allow || d.n.Load() != 1 || res.Gen != 1 {
					t.Fatalf("second decision %+v gen %d after %d asks", res.Decision, res.Gen, d.n.Load())
				}
				if _, allow, _ := live.Show(); len(allow) != 4 {
					t.Fatalf("live allow list %v", allow)
				}
			}
		})
	}
}

func TestAskRunWithoutLiveCountsOnce(t *testing.T) {
	d := &countingDecider{ans: decide.Answer{Allow: true, Scope: decide.ScopeRun}}
	g := newGate(t, &StaticResolver{Hosts: testHosts}, &recordingDialer{})
	g.Ask = &Asker{Decider: d}
	for i := 0; i < 2; i++ {
		if res := g.Decide(context.Background(), "notlisted.test", 443); !res.Decision.Allow {
			t.Fatalf("decision %d = %+v", i, res.Decision)
		}
	}
	if d.n.Load() != 2 {
		t.Fatalf("asked %d times; without a live policy a run allow cannot persist", d.n.Load())
	}
}

func TestAskNoDecider(t *testing.T) {
	g := newGate(t, &StaticResolver{Hosts: testHosts}, &recordingDialer{})
	g.Ask = &Asker{}
	res := g.Decide(context.Background(), "notlisted.test", 443)
	if res.Decision.Allow || res.Decision.Reason != ReasonDeciderFailed {
		t.Fatalf("decision = %+v, want decider-failed", res.Decision)
	}
}

func TestAskPanickingDeciderDenies(t *testing.T) {
	g, _ := askGate(t, decide.Func(func(context.Context, decide.Question) (decide.Answer, error) { panic("oops") }))
	res := g.Decide(context.Background(), "notlisted.test", 443)
	if res.Decision.Allow || res.Decision.Reason != ReasonDeciderFailed {
		t.Fatalf("decision = %+v, want decider-failed", res.Decision)
	}
}

// TestAskThroughUpstreamByName checks that asking does not change how an
// upstream that resolves (SendName) is used: no name is looked up here,
// allowed or asked.
func TestAskThroughUpstreamByName(t *testing.T) {
	port := echoServer(t)
	ps := strconv.Itoa(int(port))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &socksUpstream{ln: ln, echo: "127.0.0.1:" + ps}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.serve(c) }()
		}
	}()
	up, err := ParseUpstream("socks5://carol:pw@" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := &StaticResolver{Hosts: map[string][]netip.Addr{}}
	d := &countingDecider{ans: decide.Answer{Allow: true, Scope: decide.ScopeOnce}}
	pol := mustPolicy(t, policy.Config{Allow: []string{"svc.test:" + ps}, Deny: []string{"bad.test"}})
	g := &Gate{Policy: pol, Live: NewLive(pol), Ask: &Asker{Decider: d}, Resolver: r, DialTimeout: 5 * time.Second, Upstream: up}
	for _, host := range []string{"svc.test", "asked.test"} {
		conn, res, _, err := g.Connect(context.Background(), host, port)
		if err != nil || !res.Decision.Allow {
			t.Fatalf("%s: %+v, %v", host, res.Decision, err)
		}
		echoThrough(t, conn)
		conn.Close()
	}
	if _, res, _, _ := g.Connect(context.Background(), "bad.test", port); res.Decision.Allow || res.Decision.Reason != policy.ReasonDenied {
		t.Fatalf("bad.test: %+v", res.Decision)
	}
	if d.n.Load() != 1 || len(r.Lookups()) != 0 {
		t.Fatalf("%d asks, lookups %v; want 1 ask (asked.test) and no lookup", d.n.Load(), r.Lookups())
	}
}

func TestAskRunConcurrentQuestionsOneChange(t *testing.T) {
	d := &countingDecider{wait: make(chan struct{}), ans: decide.Answer{Allow: true, Scope: decide.ScopeRun}}
	g, live := askGate(t, d)
	var wg sync.WaitGroup
	for _, path := range []string{"/a", "/b", "/c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := decide.WithRequest(context.Background(), "http", "GET", path)
			if res := g.Decide(ctx, "notlisted.test", 80); !res.Decision.Allow {
				t.Errorf("%s: %+v", path, res.Decision)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.n.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(d.wait)
	wg.Wait()
	if gen, allow, _ := live.Show(); gen != 1 || len(allow) != 4 {
		t.Fatalf("three run allows of one destination made gen %d, allow %v; want one change", gen, allow)
	}
}

func TestAskDenyAddedWhileAskingWins(t *testing.T) {
	for _, scope := range []string{decide.ScopeOnce, decide.ScopeRun} {
		d := &countingDecider{wait: make(chan struct{}), ans: decide.Answer{Allow: true, Scope: scope}}
		g, live := askGate(t, d)
		done := make(chan Result, 1)
		go func() { done <- g.Decide(context.Background(), "notlisted.test", 443) }()
		deadline := time.Now().Add(5 * time.Second)
		for d.n.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if _, err := live.Deny("notlisted.test"); err != nil {
			t.Fatal(err)
		}
		close(d.wait)
		if res := <-done; res.Decision.Allow || res.Decision.Reason != policy.ReasonDenied {
			t.Fatalf("scope %s: %+v; want the live deny to win", scope, res.Decision)
		}
	}
}

// TestAskFailureDetailNotInText: a decider's error (which can name the
// harness's paths and sockets) is in the Decision's Detail and AuditText,
// never in the Text the client is given.
func TestAskFailureDetailNotInText(t *testing.T) {
	d := &countingDecider{err: errors.New("asking the decider: dial unix /run/harness/secret.sock: connection refused")}
	g, _ := askGate(t, d)
	res := g.Decide(context.Background(), "notlisted.test", 443)
	dec := res.Decision
	if dec.Allow || dec.Reason != ReasonDeciderFailed {
		t.Fatalf("decision = %+v, want decider-failed", dec)
	}
	if want := "notlisted.test:443 is refused: " + DeciderFailedText; dec.Text != want {
		t.Errorf("Text = %q, want %q", dec.Text, want)
	}
	if strings.Contains(dec.Text, "secret.sock") {
		t.Errorf("Text %q carries the decider's error", dec.Text)
	}
	if want := "notlisted.test:443 is refused: asking the decider: dial unix /run/harness/secret.sock: connection refused"; dec.Detail != want || dec.AuditText() != want {
		t.Errorf("Detail = %q, AuditText = %q, want %q", dec.Detail, dec.AuditText(), want)
	}
	// A decider's deny has nothing to hide.
	g, _ = askGate(t, &countingDecider{})
	if dec := g.Decide(context.Background(), "notlisted.test", 443).Decision; dec.Detail != "" || dec.AuditText() != dec.Text {
		t.Errorf("deny: Detail %q, AuditText %q, Text %q", dec.Detail, dec.AuditText(), dec.Text)
	}
}
