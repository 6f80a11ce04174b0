package winfw

import (
	"strings"
	"testing"
)

func TestSameAddresses(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"10.0.0.1", "10.0.0.1/255.255.255.255", true},
		{"10.0.0.1", "10.0.0.1/32", true},
		{"127.0.0.0/8", "127.0.0.0-127.255.255.255", true},
		{"127.0.0.0/255.0.0.0", "127.0.0.0-127.255.255.255", true},
		{"::1", "::1/128", true},
		{"::1-::1", "::1", true},
		{"1.0.0.0-1.0.0.9,1.0.0.10-1.0.0.20", "1.0.0.0-1.0.0.20", true},
		{"1.0.0.5, 1.0.0.0-1.0.0.9", "1.0.0.0-1.0.0.9", true},
		{"::1,127.0.0.0-127.255.255.255", "127.0.0.0-127.255.255.255,::1", true},
		{"*", "0.0.0.0-255.255.255.255,::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"*", "0.0.0.0-255.255.255.255", false},
		{"127.0.0.0-127.255.255.255", "127.0.0.0-127.255.255.254", false},
		{"127.0.0.0-127.255.255.255", "127.0.0.0-127.255.255.255,::1", false},
		{"LocalSubnet", "LocalSubnet", false},
		{"10.0.0.1/255.0.255.0", "10.0.0.1/255.0.255.0", false},
		{"10.0.0.9-10.0.0.1", "10.0.0.9-10.0.0.1", false},
		{"fe80::1%3", "fe80::1%3", false},
	}
	for _, tt := range tests {
		if got := SameAddresses(tt.a, tt.b); got != tt.same {
			t.Errorf("SameAddresses(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestSamePorts(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"1-1079,1081-3127,3129-65535", "1-1079, 1081-3127, 3129-65535", true},
		{"3129-65535,1-1079,1081-3127", "1-1079,1081-3127,3129-65535", true},
		{"1-10,11-20", "1-20", true},
		{"80", "80-80", true},
		{"*", "0-65535", true},
		{"*", "1-65535", false},
		{"1-1079,1081-3127", "1-3127", false},
		{"RPC", "RPC", false},
		{"65536", "65536", false},
		{"9-1", "9-1", false},
	}
	for _, tt := range tests {
		if got := SamePorts(tt.a, tt.b); got != tt.same {
			t.Errorf("SamePorts(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

// asRead returns r as Windows would read it back: single addresses with a
// mask, everything else at its default.
func asRead(r Rule) Observed {
	o := Observed{Rule: r, LocalAddresses: "*"}
	if hasPorts(r.Protocol) {
		o.LocalPorts = "*"
	}
	o.RemoteAddresses = strings.ReplaceAll(r.RemoteAddresses, "::1", "::1/128")
	return o
}

func TestCompare(t *testing.T) {
	want := mustRender(t, []uint16{3128}, false)[2] // local TCP
	if d := Compare(want, asRead(want)); d != nil {
		t.Fatalf("Compare of a faithful read-back = %q", d)
	}
	const other = "S-1-5-21-1-2-3-1001"
	tests := []struct {
		name   string
		change func(*Observed)
		word   string
	}{
		{"disabled", func(o *Observed) { o.Enabled = false }, "disabled"},
		{"allow", func(o *Observed) { o.Action = 1 }, "action"},
		{"inbound", func(o *Observed) { o.Direction = 1 }, "direction"},
		{"protocol", func(o *Observed) { o.Protocol = ProtocolUDP }, "protocol"},
		{"ports", func(o *Observed) { o.RemotePorts = "1-3127" }, "remote ports"},
		{"addresses", func(o *Observed) { o.RemoteAddresses = "127.0.0.1" }, "remote addresses"},
		{"user", func(o *Observed) { o.LocalUserAuthorizedList = "D:(A;;CC;;;" + other + ")" }, "user condition"},
		{"user deny", func(o *Observed) { o.LocalUserAuthorizedList += "(D;;CC;;;" + sid + ")" }, "user condition"},
		{"profiles", func(o *Observed) { o.Profiles = 4 }, "profiles"},
		{"interfaces", func(o *Observed) { o.InterfaceTypes = "Lan" }, "interface types"},
		{"named interfaces", func(o *Observed) { o.Interfaces = true }, "named interfaces"},
		{"application", func(o *Observed) { o.ApplicationName = `C:\x.exe` }, "application"},
		{"service", func(o *Observed) { o.ServiceName = "svc" }, "service"},
		{"package", func(o *Observed) { o.LocalAppPackageID = "S-1-15-2-1" }, "app package"},
		{"owner", func(o *Observed) { o.LocalUserOwner = other }, "owner"},
		{"remote machines", func(o *Observed) { o.RemoteMachineAuthorizedList = "D:(A;;CC;;;WD)" }, "remote machines"},
		{"remote users", func(o *Observed) { o.RemoteUserAuthorizedList = "D:(A;;CC;;;WD)" }, "remote users"},
		{"local addresses", func(o *Observed) { o.LocalAddresses = "10.0.0.1" }, "local addresses"},
		{"local ports", func(o *Observed) { o.LocalPorts = "80" }, "local ports"},
		{"secure", func(o *Observed) { o.SecureFlags = 1 }, "secure flags"},
		{"edge", func(o *Observed) { o.EdgeTraversal = true }, "edge traversal"},
		{"group", func(o *Observed) { o.Grouping = "x" }, "group"},
	}
	for _, tt := range tests {
		o := asRead(want)
		tt.change(&o)
		d := Compare(want, o)
		if len(d) != 1 || !strings.Contains(d[0], tt.word) {
			t.Errorf("%s: Compare = %q, want one difference about %q", tt.name, d, tt.word)
		}
	}
	// The description is cosmetic.
	o := asRead(want)
	o.Description = "edited"
	if d := Compare(want, o); d != nil {
		t.Errorf("description compared: %q", d)
	}
	// ICMP rules need every type.
	icmp := mustRender(t, []uint16{3128}, false)[3]
	o = asRead(icmp)
	o.IcmpTypesAndCodes = "8:0"
	if d := Compare(icmp, o); len(d) != 1 || !strings.Contains(d[0], "ICMP") {
		t.Errorf("ICMP types: %q", d)
	}
}
