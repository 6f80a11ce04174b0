package nftfw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/ruleplan"
)

// Test identities: uids that need not exist (the rules match numbers).
const (
	offUID, offGID = 4000101, 4000101
	onUID, onGID   = 4000102, 4000102
)

// Ports of the test plans.
var (
	proxyPorts   = []uint16{47100, 47101}
	nonProxyPort = 8080
)

func mustPlan(t testing.TB, ports []uint16, alb bool) ruleplan.Plan {
	t.Helper()
	p, err := ruleplan.Build(ports, alb)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRenderRefusesWhatItCannotRender(t *testing.T) {
	good := mustPlan(t, proxyPorts, false)
	if _, err := Render(good, offUID); err != nil {
		t.Fatalf("Render(good plan): %v", err)
	}
	if _, err := Render(good, 0); err == nil {
		t.Error("Render for uid 0 succeeded; root must never be the offline user")
	}
	online := mustPlan(t, proxyPorts, false)
	online.Rules[0].Identity = ruleplan.Online
	if _, err := Render(online, offUID); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Errorf("Render(rule for the online identity) = %v, want a refusal", err)
	}
	odd := mustPlan(t, proxyPorts, false)
	odd.Rules[2].Ports = []ruleplan.PortRange{{Lo: 1, Hi: 100}}
	if _, err := Render(odd, offUID); err == nil || !strings.Contains(err.Error(), "complement") {
		t.Errorf("Render(rule with arbitrary ports) = %v, want a refusal", err)
	}
	unsorted := mustPlan(t, proxyPorts, false)
	unsorted.ProxyPorts = []uint16{47101, 47100}
	if _, err := Render(unsorted, offUID); err == nil {
		t.Error("Render(unsorted ports) succeeded")
	}
	many := make([]uint16, ruleplan.MaxPorts+1)
	for i := range many {
		many[i] = uint16(20000 + i)
	}
	if _, err := Render(mustPlan(t, many, false), offUID); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Errorf("Render(%d ports) = %v, want a refusal", len(many), err)
	}
	twice := mustPlan(t, proxyPorts, false)
	twice.Rules[1].Name = twice.Rules[0].Name
	if _, err := Render(twice, offUID); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("Render(a rule name twice) = %v, want a refusal", err)
	}
}

func TestRenderedRulesAreTaggedAndMatchTheOfflineUID(t *testing.T) {
	for _, alb := range []bool{false, true} {
		p := mustPlan(t, proxyPorts, alb)
		r, err := Render(p, offUID)
		if err != nil {
			t.Fatal(err)
		}
		// The plan's rules in order, with the redirected UDP's just
		// before the local UDP block when there is one.
		var want []string
		for _, pr := range p.Rules {
			if pr.Name == ruleplan.NameLocalUDP {
				want = append(want, RedirectedUDPRuleName)
			}
			want = append(want, pr.Name)
		}
		if len(r.OutputRules) != len(want) {
			t.Fatalf("alb=%v: %d nft rules for %d plan rules, want %v", alb, len(r.OutputRules), len(p.Rules), want)
		}
		for i, nr := range r.OutputRules {
			if nr.Name != want[i] {
				t.Errorf("rule %d is named %q, want %q", i, nr.Name, want[i])
			}
			if got := readComment(comment(nr.Name)); got != nr.Name {
				t.Errorf("comment round trip: %q became %q", nr.Name, got)
			}
			lr := takeApart(nr.Exprs, nr.Name, 0)
			if !lr.hasUID || lr.uid != offUID {
				t.Errorf("rule %s does not start with meta skuid == %d", nr.Name, offUID)
			}
			// Every rule ends in a verdict that refuses, but the one
			// that accepts only redirected UDP to the reserved ports.
			if nr.Name == RedirectedUDPRuleName {
				for _, part := range []string{"[meta key=16 reg=1 src=false] [cmp op=0 reg=1 data=11]", "[ct key=2 reg=1] [bitwise sreg=1 dreg=1 len=4 mask=20000000",
					"[cmp op=1 reg=1 data=00000000]", "[lookup set=proxy_ports sreg=1 inv=false", "[cmp op=0 reg=1 data=02000000]"} {
					if !strings.Contains(lr.match, part) {
						t.Errorf("rule %s is %s, which lacks %s", nr.Name, lr.match, part)
					}
				}
				if v, ok := nr.Exprs[len(nr.Exprs)-1].(Verdict); !ok || v.Kind != verdictAccept {
					t.Errorf("rule %s ends in %v, want accept", nr.Name, nr.Exprs[len(nr.Exprs)-1])
				}
				continue
			}
			switch last := nr.Exprs[len(nr.Exprs)-1].(type) {
			case Verdict:
				if last.Kind != verdictDrop {
					t.Errorf("rule %s ends in verdict %v", nr.Name, last.Kind)
				}
			case Reject:
				// Non-local: a TCP connection attempt is reset at once.
				if nr.Name == ruleplan.NameNonLocal && last != (Reject{Type: rejectTCPReset}) {
					t.Errorf("rule %s ends in %v, want a TCP reset", nr.Name, last)
				}
			default:
				t.Errorf("rule %s ends in %T", nr.Name, last)
			}
		}
		// The input rule matches no uid and refuses unmarked listeners.
		if len(r.InputRules) != 2 || r.InputRules[0].Name != InputRuleName || r.InputRules[1].Name != InputUDPRuleName {
			t.Fatalf("input rules %+v, want the rules %s and %s", r.InputRules, InputRuleName, InputUDPRuleName)
		}
		mark := fmt.Sprintf("data=%x", binary.NativeEndian.AppendUint32(nil, ruleplan.ProxySocketMark))
		for i, proto := range []string{"data=06", "data=11"} { // TCP, UDP
			in := takeApart(r.InputRules[i].Exprs, r.InputRules[i].Name, 0)
			if in.hasUID || !strings.Contains(in.match, "socket key=1") || !strings.Contains(in.match, mark) ||
				!strings.Contains(in.match, "[cmp op=0 reg=1 "+proto+"]") || !strings.Contains(in.match, "[lookup set=proxy_ports sreg=1 inv=false") {
				t.Errorf("input rule %s, want a %s match on the proxy ports, a socket mark != %#x match and no uid", in.match, proto, ruleplan.ProxySocketMark)
			}
		}
		if got, want := chainSpec(r.Output), "type filter hook 3 priority 0 policy accept"; got != want {
			t.Errorf("output chain %s, want %s", got, want)
		}
		if got, want := chainSpec(r.Input), "type filter hook 1 priority 0 policy accept"; got != want {
			t.Errorf("input chain %s, want %s", got, want)
		}
		if !slices.Equal(r.Ports, proxyPorts) || r.Set.Name != SetName || r.Set.KeyType != typeInetService {
			t.Errorf("set %+v with %v, want %s of inet_service with %v", r.Set, r.Ports, SetName, proxyPorts)
		}
	}
	// Malformed comments do not panic.
	for _, ud := range [][]byte{nil, {0}, {0, 9, 'a'}, {1, 1, 'x', 0, 2, 'o', 'k'}} {
		readComment(ud)
	}
}

// memBackend is a Backend in memory: the table as installed, which tests
// may change behind sandgate's back.
type memBackend struct {
	t     *Table
	flags uint32 // the table's flags (Replace makes a table with none)
	fail  error  // returned by every call when set
	reads int
}

func (m *memBackend) Replace(t Table) error {
	if m.fail != nil {
		return m.fail
	}
	m.t, m.flags = &t, 0
	return nil
}

func (m *memBackend) Delete() error {
	if m.fail != nil {
		return m.fail
	}
	m.t = nil
	return nil
}

func (m *memBackend) Read() (*Live, error) {
	m.reads++
	if m.fail != nil {
		return nil, m.fail
	}
	if m.t == nil {
		return nil, nil
	}
	rules := func(rs []Rule) []LiveRule {
		var out []LiveRule
		for i, r := range rs {
			ud := comment(r.Name)
			if r.Name == "" {
				ud = nil
			}
			out = append(out, LiveRule{Handle: uint64(i + 1), UserData: ud, Exprs: slices.Clone(r.Exprs)})
		}
		return out
	}
	return NewLive([]Chain{m.t.Output, m.t.Input}, []Set{m.t.Set}, m.t.Ports, rules(m.t.OutputRules), rules(m.t.InputRules)).WithTableFlags(m.flags), nil
}

// TestVerifyInDormantTable: a table whose rules are all there but which is
// dormant (the kernel does not evaluate them) does not agree with the
// plan; the owner and persist flags are harmless, a flag this version does
// not know is named.
func TestVerifyInDormantTable(t *testing.T) {
	plan := mustPlan(t, proxyPorts, false)
	for _, c := range []struct {
		name  string
		flags uint32
		want  []string // the differences, in full
	}{
		{"none", 0, nil},
		{"dormant", tableDormant, []string{"sandgate's table is dormant: the kernel does not evaluate its rules"}},
		{"owned", tableOwner | tablePersist, nil},
		{"owned and dormant", tableOwner | tableDormant, []string{"sandgate's table is dormant: the kernel does not evaluate its rules"}},
		{"unknown", 0x80 | tableOwner, []string{"the nftables table inet sandgate has table flags 0x80 that this version does not know (it installs none)"}},
	} {
		b := &memBackend{}
		if err := ApplyTo(b, plan, offUID); err != nil {
			t.Fatal(err)
		}
		b.flags = c.flags
		d, err := VerifyIn(b, plan, offUID)
		if err != nil || !slices.Equal(d, c.want) {
			t.Errorf("%s: VerifyIn = %q, %v; want %q", c.name, d, err, c.want)
		}
	}
	// Applying again makes the table anew, awake.
	b := &memBackend{}
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	b.flags = tableDormant
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	if d, err := VerifyIn(b, plan, offUID); err != nil || d != nil {
		t.Errorf("VerifyIn after a repair = %q, %v; want nothing", d, err)
	}
}

// TestVerifyInNamesEachDifference tampers with an installed table in every
// way the comparison knows and checks the words it finds for each.
func TestVerifyInNamesEachDifference(t *testing.T) {
	plan := mustPlan(t, proxyPorts, false)
	b := &memBackend{}
	d, err := VerifyIn(b, plan, offUID)
	if err != nil || len(d) != 1 || d[0] != "the nftables table inet sandgate is missing" {
		t.Fatalf("VerifyIn before ApplyTo = %q, %v; want the table missing", d, err)
	}
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	if d, err := VerifyIn(b, plan, offUID); err != nil || d != nil {
		t.Fatalf("VerifyIn after ApplyTo = %q, %v; want nothing", d, err)
	}

	for _, c := range []struct {
		name   string
		plan   ruleplan.Plan
		uid    uint32
		tamper func(*Table)
		want   []string // each a substring of one difference
		lines  int      // how many differences (0: any)
	}{
		{name: "other ports", plan: mustPlan(t, []uint16{3128}, false), uid: offUID,
			want: []string{"set proxy_ports holds ports [47100 47101], expected [3128]"}, lines: 1},
		{name: "other uid", plan: plan, uid: offUID + 7,
			want: []string{"the rules apply to uid 4000101, expected uid 4000108 (the offline user)"}, lines: 1},
		{name: "local binding", plan: mustPlan(t, proxyPorts, true), uid: offUID,
			want: []string{"unexpected rule " + ruleplan.NameLocalTCP, "unexpected rule " + ruleplan.NameLocalUDP, "unexpected rule " + ruleplan.NameLocalOther,
				"unexpected rule " + RedirectedUDPRuleName}, lines: 4},
		{name: "foreign rule", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.OutputRules = append(t.OutputRules, Rule{Exprs: []Expr{Verdict{Kind: 1}}})
		}, want: []string{"chain output has an unexpected rule without a name (handle 6)"}, lines: 1},
		{name: "changed verdict", plan: plan, uid: offUID, tamper: func(t *Table) {
			r := &t.OutputRules[2]
			r.Exprs = append(slices.Clone(r.Exprs[:len(r.Exprs)-1]), Verdict{Kind: 1})
		}, want: []string{"rule " + ruleplan.NameLocalUDP + " does not match what this version installs (found ", "[verdict 1 ]; expected"}, lines: 1},
		{name: "no uid", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.OutputRules[0].Exprs = t.OutputRules[0].Exprs[2:]
		}, want: []string{"rule " + ruleplan.NameNonLocal + " does not match on the offline user's uid"}, lines: 1},
		{name: "rule twice", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.OutputRules = append(t.OutputRules, t.OutputRules[0])
		}, want: []string{"rule " + ruleplan.NameNonLocal + " appears 2 times"}, lines: 1},
		{name: "rule missing", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.OutputRules = t.OutputRules[1:]
		}, want: []string{"rule " + ruleplan.NameNonLocal + " is missing"}, lines: 1},
		{name: "order", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.OutputRules[0], t.OutputRules[2] = t.OutputRules[2], t.OutputRules[0]
		}, want: []string{"the rules of chain output are in a different order (" + ruleplan.NameLocalUDP + ", " + RedirectedUDPRuleName + ", " + ruleplan.NameNonLocal}, lines: 1},
		{name: "redirected udp changed", plan: plan, uid: offUID, tamper: func(t *Table) {
			r := &t.OutputRules[1] // without the lookup: any redirected local UDP would pass
			r.Exprs = append(slices.Clone(r.Exprs[:len(r.Exprs)-3]), r.Exprs[len(r.Exprs)-1])
		}, want: []string{"rule " + RedirectedUDPRuleName + " does not match what this version installs"}, lines: 1},
		{name: "input mark", plan: plan, uid: offUID, tamper: func(t *Table) {
			ex := slices.Clone(t.InputRules[0].Exprs)
			ex[8] = Cmp{Op: cmpNeq, Register: reg, Data: []byte{1, 0, 0, 0}}
			t.InputRules[0].Exprs = ex
		}, want: []string{"rule " + InputRuleName + " does not match what this version installs"}, lines: 1},
		{name: "input socket unknown", plan: plan, uid: offUID, tamper: func(t *Table) {
			ex := slices.Clone(t.InputRules[0].Exprs)
			ex[7] = Opaque{Name: "socket", Data: []byte{1, 2}}
			t.InputRules[0].Exprs = ex
		}, want: []string{"rule " + InputRuleName + " does not match what this version installs (found ", "socket 0102"}, lines: 1},
		{name: "input rule missing", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.InputRules = t.InputRules[1:]
		}, want: []string{"rule " + InputRuleName + " is missing from chain input"}, lines: 1},
		{name: "input UDP rule missing", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.InputRules = t.InputRules[:1]
		}, want: []string{"rule " + InputUDPRuleName + " is missing from chain input"}, lines: 1},
		{name: "input rule unexpected", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.InputRules = append(t.InputRules, Rule{Name: "someone-else", Exprs: []Expr{Verdict{Kind: 0}}})
		}, want: []string{"chain input has an unexpected rule someone-else"}, lines: 1},
		{name: "chain policy", plan: plan, uid: offUID, tamper: func(t *Table) {
			drop := uint32(policyDrop)
			t.Output.Policy = &drop
		}, want: []string{"chain output is type filter hook 3 priority 0 policy drop, expected type filter hook 3 priority 0 policy accept"}, lines: 1},
		{name: "input chain renamed", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.Input.Name = "other"
		}, want: []string{"chain input is missing from the nftables table inet sandgate", `has an unexpected chain "other"`}, lines: 2},
		{name: "set type", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.Set.Interval = true
		}, want: []string{"set proxy_ports is not a plain set of type inet_service"}, lines: 1},
		{name: "set renamed", plan: plan, uid: offUID, tamper: func(t *Table) {
			t.Set.Name = "ports"
		}, want: []string{"set proxy_ports is missing", `unexpected set "ports"`}, lines: 2},
	} {
		if err := ApplyTo(b, plan, offUID); err != nil {
			t.Fatal(err)
		}
		if c.tamper != nil {
			c.tamper(b.t)
		}
		d, err := VerifyIn(b, c.plan, c.uid)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, w := range c.want {
			if !slices.ContainsFunc(d, func(s string) bool { return strings.Contains(s, w) }) {
				t.Errorf("%s: differences %q lack %q", c.name, d, w)
			}
		}
		if c.lines != 0 && len(d) != c.lines {
			t.Errorf("%s: %d differences %q, want %d", c.name, len(d), d, c.lines)
		}
	}

	// Failing to read is an error, not a difference.
	b.fail = errors.New("no netlink here")
	if d, err := VerifyIn(b, plan, offUID); err == nil || d != nil {
		t.Errorf("VerifyIn with a failing backend = %q, %v; want the error", d, err)
	}
	if err := ApplyTo(b, plan, offUID); err == nil {
		t.Error("ApplyTo with a failing backend succeeded")
	}
	// A plan that cannot be rendered reaches no backend.
	b.fail, b.t = nil, nil
	if err := ApplyTo(b, plan, 0); err == nil || b.t != nil {
		t.Errorf("ApplyTo for uid 0 = %v and installed %v", err, b.t)
	}
}
