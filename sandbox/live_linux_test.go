package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/decide"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// liveSink records events for TestRunLivePolicy.
type liveSink struct {
	mu sync.Mutex
	ev []audit.Event
}

func (s *liveSink) Record(e audit.Event) {
	s.mu.Lock()
	s.ev = append(s.ev, e)
	s.mu.Unlock()
}

func (s *liveSink) find(match func(audit.Event) bool) (audit.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.ev {
		if match(e) {
			return e, true
		}
	}
	return audit.Event{}, false
}

// TestRunLivePolicy is the library's live policy and decide callback: a
// caller hands Run a gate with a Live policy (allowing nothing at first)
// and an Asker, and changes the policy while CMD runs. CMD retries a
// request until the caller's Allow lets it through (audited with the new
// generation); a destination the decider allows for the run is added to
// the same Live policy.
func TestRunLivePolicy(t *testing.T) {
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hsrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the host")
	})}
	go hsrv.Serve(hln)
	defer hsrv.Close()
	target := hln.Addr().String()
	asked := hostListener(t, "asked-target-greeting")
	ah, ap, _ := net.SplitHostPort(asked)

	// asked.test (a name, so that it is put to the decider) is at the
	// loopback address, which only an IP entry lets through the address
	// check: the policy starts with that entry and nothing else.
	start, err := policy.New(policy.Config{Allow: []string{asked}})
	if err != nil {
		t.Fatal(err)
	}
	live := egress.NewLive(start)
	var questions atomic.Int32
	ask := decide.Func(func(ctx context.Context, q decide.Question) (decide.Answer, error) {
		questions.Add(1)
		if q.Host == "asked.test" && strconv.Itoa(int(q.Port)) == ap {
			return decide.Answer{Allow: true, Scope: decide.ScopeRun}, nil
		}
		return decide.Answer{}, nil // deny
	})
	sink := &liveSink{}
	script := `until "$0" http "$1" | grep -q "200 OK"; do sleep 0.1; done; echo ALLOWED; "$0" socks "$2" "$3"`
	spec := helperSpec("proxy")
	spec.Args = []string{"/bin/sh", "-c", script, testBinary(), target, "asked.test", ap}
	spec.Network = NetworkProxy
	spec.Gate = &egress.Gate{Live: live, Ask: &egress.Asker{Decider: ask, Run: "live-test"},
		Resolver: &egress.StaticResolver{Hosts: map[string][]netip.Addr{"asked.test": {netip.MustParseAddr(ah)}}}}
	spec.Audit = sink
	_, wait := background(t, spec)

	// CMD is refused (the decider says no) until the caller allows target.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := sink.find(func(e audit.Event) bool { return e.Decision == audit.DecisionDeny && e.Port == port(t, target) }); ok {
			break
		}
		if time.Now().After(deadline) {
			o := wait()
			mustHaveSandbox(t, o.err)
			t.Fatalf("no refusal of %s: %+v %v %q", target, o.res, o.err, o.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	gen, err := live.Allow(target)
	if err != nil || gen != 1 {
		t.Fatalf("Allow: gen %d, %v", gen, err)
	}
	o := wait()
	mustHaveSandbox(t, o.err)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	for _, want := range []string{"ALLOWED\n", fmt.Sprintf("socks asked.test:%s ok asked-target-greeting\n", ap)} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, o.stdout)
		}
	}
	if e, ok := sink.find(func(e audit.Event) bool { return e.Decision == audit.DecisionAllow && e.Port == port(t, target) }); !ok || e.Gen != 1 {
		t.Errorf("the allowed request: %+v (found %v), want generation 1", e, ok)
	}
	if e, ok := sink.find(func(e audit.Event) bool { return e.Decision == audit.DecisionAllow && e.Port == port(t, asked) }); !ok || e.Gen != 2 {
		t.Errorf("the decider's destination: %+v (found %v), want generation 2", e, ok)
	}
	if g, allow, _ := live.Show(); g != 2 || strings.Join(allow, ",") != asked+","+target+",asked.test:"+ap {
		t.Errorf("live policy after the run: gen %d, allow %q", g, allow)
	}
	if questions.Load() == 0 {
		t.Errorf("the decider was never asked")
	}
}

func port(t *testing.T, hostport string) uint16 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	var n uint16
	fmt.Sscan(p, &n)
	return n
}
