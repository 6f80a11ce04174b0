package ruleplan

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestComplement(t *testing.T) {
	tests := []struct {
		ports []uint16
		want  string
	}{
		{nil, "1-65535"},
		{[]uint16{3128}, "1-3127,3129-65535"},
		{[]uint16{1080, 3128}, "1-1079,1081-3127,3129-65535"},
		{[]uint16{1}, "2-65535"},
		{[]uint16{65535}, "1-65534"},
		{[]uint16{1, 65535}, "2-65534"},
		{[]uint16{1, 2, 3}, "4-65535"},
		{[]uint16{5, 6, 8}, "1-4,7,9-65535"},
	}
	for _, tt := range tests {
		if got := FormatRanges(Complement(tt.ports)); got != tt.want {
			t.Errorf("Complement(%v) = %q, want %q", tt.ports, got, tt.want)
		}
	}
	all := make([]uint16, 0, 65535)
	for p := 1; p <= 65535; p++ {
		all = append(all, uint16(p))
	}
	if got := Complement(all); len(got) != 0 {
		t.Errorf("Complement(every port) = %v, want empty", got)
	}
}

// TestComplementCovers checks, port by port, that the complement and the
// ports partition 1-65535.
func TestComplementCovers(t *testing.T) {
	ports := []uint16{22, 80, 81, 443, 1080, 3128, 65000}
	in := map[uint16]bool{}
	for _, r := range Complement(ports) {
		if r.Lo > r.Hi {
			t.Fatalf("bad range %v", r)
		}
		for p := int(r.Lo); p <= int(r.Hi); p++ {
			if in[uint16(p)] {
				t.Fatalf("port %d covered twice", p)
			}
			in[uint16(p)] = true
		}
	}
	for p := 1; p <= 65535; p++ {
		if in[uint16(p)] == slices.Contains(ports, uint16(p)) {
			t.Fatalf("port %d: in complement=%v, is proxy port=%v", p, in[uint16(p)], slices.Contains(ports, uint16(p)))
		}
	}
}

func TestBuild(t *testing.T) {
	p, err := Build([]uint16{3128, 1080, 3128}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.ProxyPorts, []uint16{1080, 3128}) {
		t.Errorf("ports = %v", p.ProxyPorts)
	}
	var names []string
	for _, r := range p.Rules {
		names = append(names, r.Name)
		if r.Identity != Offline || r.Direction != "out" {
			t.Errorf("rule %s: identity %s direction %s", r.Name, r.Identity, r.Direction)
		}
	}
	if want := []string{NameNonLocal, NameLocalUDP, NameLocalTCP, NameLocalOther}; !slices.Equal(names, want) {
		t.Errorf("rules = %v, want %v", names, want)
	}
	tcp := p.Rules[2]
	if tcp.Protocol != TCP || tcp.Remote != Local || FormatRanges(tcp.Ports) != "1-1079,1081-3127,3129-65535" || !tcp.Reject {
		t.Errorf("local tcp rule = %+v", tcp)
	}
	// Rejected, not dropped: a client that ignores the proxy fails at once.
	if p.Rules[0].Protocol != Any || p.Rules[0].Remote != NonLocal || p.Rules[0].Ports != nil || !p.Rules[0].Reject {
		t.Errorf("non-local rule = %+v", p.Rules[0])
	}

	alb, err := Build([]uint16{3128}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(alb.Rules) != 1 || alb.Rules[0].Name != NameNonLocal {
		t.Errorf("allow_local_binding plan = %+v, want only the non-local block", alb.Rules)
	}

	none, err := Build(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if FormatRanges(none.Rules[2].Ports) != "1-65535" {
		t.Errorf("no-port plan blocks %v", none.Rules[2].Ports)
	}

	if _, err := Build([]uint16{0, 3128}, false); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Errorf("Build with port 0: err = %v", err)
	}
}

func TestDigest(t *testing.T) {
	a, _ := Build([]uint16{3128, 1080}, false)
	b, _ := Build([]uint16{1080, 3128}, false)
	c, _ := Build([]uint16{1080, 3129}, false)
	d, _ := Build([]uint16{1080, 3128}, true)
	if a.Digest() != b.Digest() {
		t.Error("digest depends on port order")
	}
	if a.Digest() == c.Digest() || a.Digest() == d.Digest() {
		t.Error("digest does not change with ports or allow_local_binding")
	}
	if len(a.Digest()) != 64 {
		t.Errorf("digest %q is not hex sha256", a.Digest())
	}
}

func TestDrift(t *testing.T) {
	want, _ := Build([]uint16{3128, 8080}, false)
	tests := []struct {
		name    string
		version int
		ports   []uint16
		alb     bool
		want    []string
	}{
		{"current", Version, []uint16{8080, 3128}, false, nil},
		{"ports", Version, []uint16{3128}, false, []string{"proxy ports changed from [3128] to [3128 8080]"}},
		{"alb", Version, []uint16{3128, 8080}, true, []string{"allow_local_binding changed from true to false"}},
		{"version", Version - 1, []uint16{3128, 8080}, false, []string{fmt.Sprintf("rule plan version changed from %d to %d", Version-1, Version)}},
		{"all", 0, nil, true, []string{fmt.Sprintf("rule plan version changed from 0 to %d", Version), "proxy ports changed from [] to [3128 8080]", "allow_local_binding changed from true to false"}},
	}
	for _, tt := range tests {
		got := Drift(tt.version, tt.ports, tt.alb, want)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: Drift = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func FuzzComplement(f *testing.F) {
	f.Add([]byte{0x0c, 0x38, 0x04, 0x38})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ports []uint16
		for i := 0; i+1 < len(raw); i += 2 {
			ports = append(ports, uint16(raw[i])<<8|uint16(raw[i+1]))
		}
		ps, err := NormalizePorts(ports)
		if err != nil {
			return
		}
		total := len(ps)
		prev := 0
		for _, r := range Complement(ps) {
			if int(r.Lo) <= prev || r.Lo > r.Hi {
				t.Fatalf("ranges out of order: %v", Complement(ps))
			}
			for _, p := range ps {
				if p >= r.Lo && p <= r.Hi {
					t.Fatalf("proxy port %d inside complement range %v", p, r)
				}
			}
			total += int(r.Hi) - int(r.Lo) + 1
			prev = int(r.Hi)
		}
		if total != 65535 {
			t.Fatalf("ports and complement cover %d ports, want 65535", total)
		}
	})
}
