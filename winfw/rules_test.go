package winfw

import (
	"strings"
	"testing"

	"github.com/sandgate/sandgate/ruleplan"
)

const sid = "S-1-5-21-3623811015-3361044348-30300820-1013"

func mustRender(t *testing.T, ports []uint16, alb bool) []Rule {
	t.Helper()
	p, err := ruleplan.Build(ports, alb)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Render(p, sid)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRender(t *testing.T) {
	rs := mustRender(t, []uint16{3128, 1080}, false)
	type row struct {
		name  string
		proto int32
		addrs string
		ports string
		icmp  string
	}
	want := []row{
		{"sandgate-offline-block-nonlocal", ProtocolAny, "0.0.0.0-126.255.255.255,128.0.0.0-255.255.255.255,::,::2-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", ""},
		{"sandgate-offline-block-local-udp", ProtocolUDP, "127.0.0.0-127.255.255.255,::1", "*", ""},
		{"sandgate-offline-block-local-tcp", ProtocolTCP, "127.0.0.0-127.255.255.255,::1", "1-1079,1081-3127,3129-65535", ""},
		{"sandgate-offline-block-local-other-icmpv4", ProtocolICMPv4, "127.0.0.0-127.255.255.255", "", "*"},
		{"sandgate-offline-block-local-other-icmpv6", ProtocolICMPv6, "::1", "", "*"},
	}
	if len(rs) != len(want) {
		t.Fatalf("rendered %d rules, want %d: %+v", len(rs), len(want), rs)
	}
	for i, r := range rs {
		w := want[i]
		got := row{r.Name, r.Protocol, r.RemoteAddresses, r.RemotePorts, r.IcmpTypesAndCodes}
		if got != w {
			t.Errorf("rule %d = %+v, want %+v", i, got, w)
		}
		if r.LocalUserAuthorizedList != "D:(A;;CC;;;"+sid+")" {
			t.Errorf("%s: user condition %q", r.Name, r.LocalUserAuthorizedList)
		}
		if r.Direction != DirectionOut || r.Action != ActionBlock || !r.Enabled || r.Profiles != ProfilesAll ||
			r.InterfaceTypes != "All" || r.Grouping != Grouping || !strings.HasPrefix(r.Description, "sandgate: ") {
			t.Errorf("%s: common fields %+v", r.Name, r)
		}
	}

	alb := mustRender(t, []uint16{3128}, true)
	if len(alb) != 1 || alb[0].Name != ruleplan.NameNonLocal {
		t.Errorf("allow_local_binding renders %+v, want only the non-loopback block", alb)
	}
	none := mustRender(t, nil, false)
	if none[2].RemotePorts != "1-65535" {
		t.Errorf("no proxy ports: local TCP ports %q", none[2].RemotePorts)
	}

	p, _ := ruleplan.Build([]uint16{3128}, false)
	if _, err := Render(p, "S-1-5-18)(A;;CC;;;WD"); err == nil {
		t.Error("Render accepted a bad SID")
	}
	bad := p
	bad.Rules = append([]ruleplan.Rule(nil), p.Rules...)
	bad.Rules[0].Identity = ruleplan.Online
	if _, err := Render(bad, sid); err == nil {
		t.Error("Render accepted a rule for the online identity")
	}
	bad.Rules[0] = p.Rules[0]
	bad.Rules[0].Name = "Core Networking - DNS (UDP-Out)"
	if _, err := Render(bad, sid); err == nil {
		t.Error("Render accepted a rule name that is not sandgate's")
	}
	// The TCP rule with an empty complement (every port is a proxy port)
	// blocks nothing and is left out, not rendered as "every port".
	bad.Rules = append([]ruleplan.Rule(nil), p.Rules...)
	bad.Rules[2].Ports = []ruleplan.PortRange{}
	rs, err := Render(bad, sid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Name == ruleplan.NameLocalTCP {
			t.Errorf("empty port list rendered as %q", r.RemotePorts)
		}
	}
}

// TestRenderedAddressesPartition checks that the loopback and non-loopback
// lists of the rendering cover every address exactly once between them.
func TestRenderedAddressesPartition(t *testing.T) {
	rs := mustRender(t, []uint16{3128}, false)
	all := rs[0].RemoteAddresses + "," + rs[1].RemoteAddresses
	if !SameAddresses(all, "*") {
		got, _ := ParseAddresses(all)
		t.Errorf("non-loopback + loopback = %v, want every address", got)
	}
	nl, _ := parseAddrRanges(rs[0].RemoteAddresses)
	lo, _ := parseAddrRanges(rs[1].RemoteAddresses)
	for _, a := range nl {
		for _, b := range lo {
			if a.lo.Is4() == b.lo.Is4() && a.lo.Compare(b.hi) <= 0 && b.lo.Compare(a.hi) <= 0 {
				t.Errorf("ranges overlap: %v and %v", a, b)
			}
		}
	}
}

func TestTransition(t *testing.T) {
	tr, err := Transition(sid)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Name != TransitionName || tr.Protocol != ProtocolAny || tr.RemoteAddresses != "*" || tr.Action != ActionBlock || !IsOurs(tr.Name) {
		t.Errorf("transition rule %+v", tr)
	}
}
