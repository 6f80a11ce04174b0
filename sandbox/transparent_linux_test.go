//go:build linux

package sandbox

import (
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/dnsstub"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/policy"
)

// events is an audit sink that keeps what it is given.
type events struct {
	mu  sync.Mutex
	got []audit.Event
}

func (e *events) Record(ev audit.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

// TestTransparentRunPieces checks the parent's side of the transparent path
// without a sandbox: the views it writes, the stub's policy question, the
// audit events of refused names and packets, the pool as the proxy's
// names, and that stop removes the views.
func TestTransparentRunPieces(t *testing.T) {
	pol, err := policy.New(policy.Config{Allow: []string{"ok.test:443", "**.flood.test"}, Deny: []string{"bad.flood.test"}})
	if err != nil {
		t.Fatal(err)
	}
	sink := &events{}
	t.Setenv("TMPDIR", t.TempDir())
	tr, it, replace, err := newTransparentRun(Spec{Gate: &egress.Gate{Policy: pol}, Audit: sink})
	if err != nil {
		t.Fatal(err)
	}
	if len(it.SelfAddrs) != 2 || len(replace) != 2 || replace[0].Target != "/etc/hosts" || replace[1].Target != "/etc/resolv.conf" {
		t.Fatalf("init part %+v, replacements %+v", it, replace)
	}
	resolv, err := os.ReadFile(replace[1].Source)
	if err != nil || !strings.Contains(string(resolv), "nameserver 127.0.0.1\n") {
		t.Errorf("resolv.conf view %q (%v)", resolv, err)
	}
	for name, want := range map[string]bool{"ok.test": true, "x.flood.test": true, "bad.flood.test": false, "other.test": false} {
		if ok, _ := tr.policy().Allowed(name); ok != want {
			t.Errorf("stub policy for %s = %v, want %v", name, ok, want)
		}
	}

	tr.dnsRefused(dnsstub.Refusal{Transport: "udp", Client: "127.0.0.1:5", Name: "other.test", Type: "A", RCode: "NXDOMAIN", Reason: policy.ReasonNotAllowed})
	tr.recordRefusals(nftfw.Refusals{UDP: 3, Other: 1})
	if len(sink.got) != 3 {
		t.Fatalf("events %+v, want 3", sink.got)
	}
	dns := sink.got[0]
	if dns.Proto != ProtoDNS || dns.Host != "other.test" || dns.Port != 0 || dns.Decision != audit.DecisionDeny ||
		dns.Reason != policy.ReasonNotAllowed || !strings.Contains(dns.Text, "other.test is not on the allow list") {
		t.Errorf("DNS refusal event %+v", dns)
	}
	if u := sink.got[1]; u.Proto != ProtoPacket || u.Host != "udp" || u.Reason != ReasonUDPRefused || !strings.HasPrefix(u.Text, "3 UDP") {
		t.Errorf("UDP refusal event %+v", u)
	}
	if o := sink.got[2]; o.Reason != ReasonOtherRefused || !strings.HasPrefix(o.Text, "1 ") {
		t.Errorf("other refusal event %+v", o)
	}

	m, err := tr.pool.Allocate("x.flood.test")
	if err != nil {
		t.Fatal(err)
	}
	names := poolNames{tr.pool}
	if !names.Contains(m.V4) || names.Contains(netip.MustParseAddr("203.0.113.1")) {
		t.Error("Contains does not follow the pool's range")
	}
	if name, hosts, release, ok := names.Acquire(m.V4); !ok || name != "x.flood.test" || hosts != nil {
		t.Errorf("Acquire(%s) = %q %v %v", m.V4, name, hosts, ok)
	} else {
		release()
	}
	if _, _, _, ok := names.Acquire(netip.MustParseAddr("198.18.0.200")); ok {
		t.Error("an address that stands for no name was acquired")
	}

	tr.stop()
	tr.stop() // twice is harmless
	if _, err := os.Stat(tr.dir); !os.IsNotExist(err) {
		t.Errorf("the run's views are still there after stop: %v", err)
	}
}

// TestWithOwnHostname: the machine's own name is added on loopback when
// the hosts view lacks it, and left alone when a line names it.
func TestWithOwnHostname(t *testing.T) {
	name, err := os.Hostname()
	if err != nil || name == "" {
		t.Fatalf("hostname: %q %v", name, err)
	}
	got := string(withOwnHostname([]byte("127.0.0.1 localhost")))
	if want := "127.0.0.1 localhost\n127.0.1.1 " + name + "\n"; got != want {
		t.Errorf("added: %q, want %q", got, want)
	}
	has := "127.0.0.1 localhost " + name + " # here\n"
	if got := string(withOwnHostname([]byte(has))); got != has {
		t.Errorf("already named: %q, want it unchanged", got)
	}
}
