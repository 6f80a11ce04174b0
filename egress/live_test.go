package egress

import (
	"context"
	"errors"
	"net/netip"
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
