package winfw

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/winsec"
)

// fakeFirewall is an in-memory Windows Firewall: an ordered list of rules
// (names need not be unique) with block semantics.
type fakeFirewall struct {
	rules   []Observed
	foreign []Observed // rules not ours, which List does not return
	failOn  string     // "add NAME" or "refresh NAME": that call fails
	mangle  string     // rule name whose read-back loses its user condition
	onWrite func()     // called after every change
}

func (f *fakeFirewall) List() ([]Observed, error) {
	var out []Observed
	for _, r := range f.rules {
		if r.Name == f.mangle {
			r.LocalUserAuthorizedList = "D:"
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeFirewall) Add(r Rule) error {
	if f.failOn == "add "+r.Name {
		return errors.New("injected failure")
	}
	f.rules = append(f.rules, asRead(r))
	f.onWrite()
	return nil
}

func (f *fakeFirewall) Refresh(r Rule) error {
	if f.failOn == "refresh "+r.Name {
		return errors.New("injected failure")
	}
	n := 0
	for i := range f.rules {
		if f.rules[i].Name == r.Name {
			f.rules[i] = asRead(r)
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("refresh of %s: %d rules", r.Name, n)
	}
	f.onWrite()
	return nil
}

func (f *fakeFirewall) Remove(name string) error {
	f.rules = slices.DeleteFunc(f.rules, func(o Observed) bool { return o.Name == name })
	f.onWrite()
	return nil
}

// packet is one probe: a process of user sends proto to addr:port.
type packet struct {
	user  string
	proto int32
	addr  string
	port  int
}

func (p packet) String() string {
	return fmt.Sprintf("%s proto %d to %s:%d", p.user[len(p.user)-4:], p.proto, p.addr, p.port)
}

// blocks reports whether an enabled block rule matches the packet, with
// Windows Firewall's matching: protocol, remote address, remote port (TCP
// and UDP), user condition, and no narrowing condition.
func blocks(rules []Observed, p packet) bool {
	a := netip.MustParseAddr(p.addr)
	for _, r := range rules {
		if !r.Enabled || r.Action != ActionBlock || r.Direction != DirectionOut || r.Profiles&profileBits != profileBits {
			continue
		}
		if r.ApplicationName != "" || r.ServiceName != "" || r.LocalAppPackageID != "" || r.Interfaces ||
			!strings.EqualFold(r.InterfaceTypes, "All") || r.SecureFlags != 0 {
			continue
		}
		if r.Protocol != ProtocolAny && r.Protocol != p.proto {
			continue
		}
		if winsec.CheckUserMatch(r.LocalUserAuthorizedList, p.user) != nil {
			continue
		}
		rs, err := parseAddrRanges(r.RemoteAddresses)
		if err != nil {
			continue
		}
		inAddr := false
		for _, x := range rs {
			if x.lo.Is4() == a.Is4() && x.lo.Compare(a) <= 0 && a.Compare(x.hi) <= 0 {
				inAddr = true
			}
		}
		if !inAddr {
			continue
		}
		if hasPorts(r.Protocol) {
			ps, err := ParsePorts(r.RemotePorts)
			if err != nil {
				continue
			}
			inPort := false
			for _, x := range ps {
				if x[0] <= p.port && p.port <= x[1] {
					inPort = true
				}
			}
			if !inPort {
				continue
			}
		}
		return true
	}
	return false
}

const otherUser = "S-1-5-21-1-2-3-1001"

// probes are the packets every state is checked with.
func probes() []packet {
	var ps []packet
	for _, u := range []string{sid, otherUser} {
		for _, addr := range []string{"127.0.0.1", "127.8.9.10", "::1"} {
			for _, port := range []int{1, 53, 1079, 1080, 1081, 3127, 3128, 3129, 8080, 47100, 65535} {
				ps = append(ps, packet{u, ProtocolTCP, addr, port}, packet{u, ProtocolUDP, addr, port})
			}
			ps = append(ps, packet{u, ProtocolICMPv4, addr, 0}, packet{u, ProtocolICMPv6, addr, 0})
		}
		for _, addr := range []string{"8.8.8.8", "10.0.0.1", "0.0.0.0", "126.255.255.255", "128.0.0.0", "255.255.255.255", "::", "::2", "2001:db8::1", "fe80::1", "::ffff:127.0.0.1"} {
			for _, proto := range []int32{ProtocolTCP, ProtocolUDP, ProtocolICMPv4, ProtocolICMPv6, 132, 47} {
				ps = append(ps, packet{u, proto, addr, 443})
			}
		}
	}
	return ps
}

// blockedSet returns the probes the rules block.
func blockedSet(rules []Observed) map[packet]bool {
	m := map[packet]bool{}
	for _, p := range probes() {
		if blocks(rules, p) {
			m[p] = true
		}
	}
	return m
}

type config struct {
	name  string
	ports []uint16
	alb   bool
	none  bool // nothing installed
}

// stateFor returns the rules a clean install of c leaves.
func stateFor(t *testing.T, c config) []Observed {
	if c.none {
		return nil
	}
	var out []Observed
	for _, r := range mustRender(t, c.ports, c.alb) {
		out = append(out, asRead(r))
	}
	return out
}

// TestApplyFailClosed applies every configuration over every other (and
// over tampered and half-finished states) and checks, after every single
// change, that every packet blocked both before and after is blocked, and
// that the end state blocks exactly what a clean install blocks.
func TestApplyFailClosed(t *testing.T) {
	tr, _ := Transition(sid)
	configs := []config{
		{name: "none", none: true},
		{name: "3128", ports: []uint16{3128}},
		{name: "3128+8080", ports: []uint16{3128, 8080}},
		{name: "1080+3128", ports: []uint16{1080, 3128}},
		{name: "3128 alb", ports: []uint16{3128}, alb: true},
		{name: "no ports", ports: nil},
	}
	type start struct {
		name  string
		rules []Observed
	}
	var starts []start
	for _, c := range configs {
		starts = append(starts, start{c.name, stateFor(t, c)})
	}
	// Tampered: the local TCP rule opened to every port, an application
	// condition on the non-loopback block, a duplicate, a leftover
	// transition rule, a stale rule and a disabled one.
	base := stateFor(t, configs[1])
	tampered := slices.Clone(base)
	tampered[2].RemotePorts = "1-2"
	tampered[0].ApplicationName = `C:\other.exe`
	starts = append(starts, start{"tampered", tampered})
	dup := append(slices.Clone(base), base[1])
	starts = append(starts, start{"duplicate", dup})
	starts = append(starts, start{"leftover transition", append(slices.Clone(base), asRead(tr))})
	badTr := asRead(tr)
	badTr.Enabled = false
	starts = append(starts, start{"broken transition", append(slices.Clone(base), badTr)})
	stale := append(slices.Clone(base), Observed{Rule: Rule{Name: NamePrefix + "block-old"}})
	starts = append(starts, start{"stale", stale})
	disabled := slices.Clone(base)
	disabled[0].Enabled = false
	starts = append(starts, start{"disabled", disabled})

	for _, s := range starts {
		for _, c := range configs {
			t.Run(s.name+" to "+c.name, func(t *testing.T) {
				want := []Rule{}
				if !c.none {
					want = mustRender(t, c.ports, c.alb)
				}
				before := blockedSet(s.rules)
				after := blockedSet(stateFor(t, c))
				f := &fakeFirewall{rules: slices.Clone(s.rules)}
				changes := 0
				f.onWrite = func() {
					changes++
					now := blockedSet(f.rules)
					for p := range before {
						if after[p] && !now[p] {
							t.Fatalf("after change %d, %s passes through though blocked before and after", changes, p)
						}
					}
				}
				if _, err := Apply(f, want, tr, nil); err != nil {
					t.Fatal(err)
				}
				got := blockedSet(f.rules)
				if !mapsEqual(got, after) {
					t.Errorf("end state blocks %d probes, a clean install %d", len(got), len(after))
				}
				if d := Differences(f.rules, want); d != nil {
					t.Errorf("end state differs: %q", d)
				}
				for p := range got {
					if p.user == otherUser {
						t.Fatalf("another user's packet blocked: %s", p)
					}
				}
			})
		}
	}
}

func mapsEqual(a, b map[packet]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// TestApplyBlocksWhatThePlanSays spells out the end state of a clean
// install for a few probes, so the simulation itself is checked.
func TestApplyBlocksWhatThePlanSays(t *testing.T) {
	rules := stateFor(t, config{ports: []uint16{3128, 8080}})
	tests := []struct {
		p       packet
		blocked bool
	}{
		{packet{sid, ProtocolTCP, "127.0.0.1", 3128}, false},
		{packet{sid, ProtocolTCP, "127.0.0.1", 8080}, false},
		{packet{sid, ProtocolTCP, "::1", 3128}, false},
		{packet{sid, ProtocolTCP, "127.0.0.1", 3129}, true},
		{packet{sid, ProtocolTCP, "::1", 22}, true},
		{packet{sid, ProtocolUDP, "127.0.0.1", 53}, true},
		{packet{sid, ProtocolUDP, "127.0.0.1", 3128}, true},
		{packet{sid, ProtocolICMPv4, "127.0.0.1", 0}, true},
		{packet{sid, ProtocolICMPv6, "::1", 0}, true},
		{packet{sid, ProtocolTCP, "8.8.8.8", 3128}, true},
		{packet{sid, 132, "10.0.0.1", 0}, true},
		{packet{sid, ProtocolUDP, "::", 53}, true},
		{packet{sid, ProtocolTCP, "::ffff:127.0.0.1", 3129}, true},
		{packet{otherUser, ProtocolTCP, "8.8.8.8", 443}, false},
		{packet{otherUser, ProtocolUDP, "127.0.0.1", 53}, false},
	}
	for _, tt := range tests {
		if got := blocks(rules, tt.p); got != tt.blocked {
			t.Errorf("%s: blocked = %v, want %v", tt.p, got, tt.blocked)
		}
	}
	alb := stateFor(t, config{ports: []uint16{3128}, alb: true})
	if blocks(alb, packet{sid, ProtocolTCP, "127.0.0.1", 22}) || !blocks(alb, packet{sid, ProtocolTCP, "1.1.1.1", 443}) {
		t.Error("allow_local_binding: loopback should open, non-loopback stay shut")
	}
}

func names(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Op.String()+" "+strings.TrimPrefix(s.Name, NamePrefix))
	}
	return out
}

func TestPlanSteps(t *testing.T) {
	tr, _ := Transition(sid)
	r3128 := mustRender(t, []uint16{3128}, false)
	steps, err := PlanSteps(nil, r3128, tr)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"add block-all-transition",
		"add block-nonlocal", "add block-local-udp", "add block-local-tcp",
		"add block-local-other-icmpv4", "add block-local-other-icmpv6",
		"remove block-all-transition",
	}
	if got := names(steps); !slices.Equal(got, want) {
		t.Errorf("fresh install steps = %q\nwant %q", got, want)
	}

	installed := stateFor(t, config{ports: []uint16{3128}})
	steps, _ = PlanSteps(installed, r3128, tr)
	want = []string{"refresh block-nonlocal", "refresh block-local-udp", "refresh block-local-tcp", "refresh block-local-other-icmpv4", "refresh block-local-other-icmpv6"}
	if got := names(steps); !slices.Equal(got, want) {
		t.Errorf("steady steps = %q", got)
	}

	// Adding a proxy port: the broad block first, the narrowed TCP rule
	// replaced under it, the broad block removed last.
	steps, _ = PlanSteps(installed, mustRender(t, []uint16{3128, 8080}, false), tr)
	want = []string{
		"add block-all-transition",
		"refresh block-nonlocal", "refresh block-local-udp",
		"remove block-local-tcp", "add block-local-tcp",
		"refresh block-local-other-icmpv4", "refresh block-local-other-icmpv6",
		"remove block-all-transition",
	}
	if got := names(steps); !slices.Equal(got, want) {
		t.Errorf("port change steps = %q\nwant %q", got, want)
	}
	if !strings.Contains(steps[3].Why, "remote ports") {
		t.Errorf("replacement reason %q does not name the ports", steps[3].Why)
	}

	// Turning on allow_local_binding removes the loopback rules under the
	// broad block.
	steps, _ = PlanSteps(installed, mustRender(t, []uint16{3128}, true), tr)
	want = []string{
		"add block-all-transition", "refresh block-nonlocal",
		"remove block-local-other-icmpv4", "remove block-local-other-icmpv6", "remove block-local-tcp", "remove block-local-udp",
		"remove block-all-transition",
	}
	if got := names(steps); !slices.Equal(got, want) {
		t.Errorf("allow_local_binding steps = %q\nwant %q", got, want)
	}

	// Uninstall: loopback rules, then the non-loopback block, then a
	// leftover transition rule.
	steps, _ = PlanSteps(append(slices.Clone(installed), asRead(tr)), nil, tr)
	want = []string{
		"remove block-local-other-icmpv4", "remove block-local-other-icmpv6", "remove block-local-tcp", "remove block-local-udp",
		"remove block-nonlocal", "remove block-all-transition",
	}
	if got := names(steps); !slices.Equal(got, want) {
		t.Errorf("uninstall steps = %q\nwant %q", got, want)
	}

	// Rules that are not ours are never touched.
	foreign := Observed{Rule: Rule{Name: "Core Networking - DNS (UDP-Out)"}}
	steps, _ = PlanSteps(append(slices.Clone(installed), foreign), nil, tr)
	for _, s := range steps {
		if !IsOurs(s.Name) {
			t.Errorf("step touches a foreign rule: %v", s)
		}
	}

	if _, err := PlanSteps(nil, append(slices.Clone(r3128), r3128[0]), tr); err == nil {
		t.Error("PlanSteps accepted a duplicated wanted rule")
	}
	if _, err := PlanSteps(nil, []Rule{tr}, tr); err == nil {
		t.Error("PlanSteps accepted the transition rule as wanted")
	}
}

func TestApplyFailureKeepsUserShut(t *testing.T) {
	tr, _ := Transition(sid)
	f := &fakeFirewall{rules: stateFor(t, config{ports: []uint16{3128}}), onWrite: func() {}, failOn: "add " + NamePrefix + "block-local-tcp"}
	_, err := Apply(f, mustRender(t, []uint16{3128, 8080}, false), tr, nil)
	if err == nil || !strings.Contains(err.Error(), "no network access until `sandgate setup` succeeds") {
		t.Fatalf("Apply error = %v", err)
	}
	for _, p := range probes() {
		if p.user == sid && !blocks(f.rules, p) {
			t.Fatalf("after a failed apply %s passes", p)
		}
	}

	// A rule that reads back differently from what was written is an error.
	f = &fakeFirewall{onWrite: func() {}, mangle: NamePrefix + "block-nonlocal"}
	_, err = Apply(f, mustRender(t, []uint16{3128}, false), tr, nil)
	if !errors.Is(err, ErrVerify) && (err == nil || !strings.Contains(err.Error(), "verification")) {
		t.Fatalf("Apply with a mangled read-back = %v", err)
	}
	if !strings.Contains(err.Error(), "block-nonlocal") {
		t.Errorf("error does not name the rule: %v", err)
	}
}

func TestDifferences(t *testing.T) {
	tr, _ := Transition(sid)
	want := mustRender(t, []uint16{3128}, false)
	installed := stateFor(t, config{ports: []uint16{3128}})
	if d := Differences(installed, want); d != nil {
		t.Errorf("Differences of a clean install = %q", d)
	}
	broken := slices.Clone(installed[1:])
	broken = append(broken, installed[2], asRead(tr))
	broken[1].RemotePorts = "1-3128"
	d := Differences(broken, want)
	joined := strings.Join(d, "\n")
	for _, w := range []string{"block-nonlocal is missing", "block-local-tcp is installed 2 times", "unfinished setup"} {
		if !strings.Contains(joined, w) {
			t.Errorf("Differences lacks %q:\n%s", w, joined)
		}
	}
}
