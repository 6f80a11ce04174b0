package policy

import (
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct{ addr, want string }{
		// Ordinary, including the documentation ranges tests use.
		{"203.0.113.10", ""},
		{"198.51.100.1", ""},
		{"192.0.2.1", ""},
		{"8.8.8.8", ""},
		{"2001:db8::1", ""},
		{"2606:4700::1111", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"169.255.0.1", ""},
		{"223.255.255.255", ""},
		// IPv4 classes.
		{"127.0.0.1", ClassLoopback},
		{"127.255.255.254", ClassLoopback},
		{"0.0.0.0", ClassUnspecified},
		{"0.1.2.3", ClassThisNetwork},
		{"169.254.1.1", ClassLinkLocal},
		{"224.0.0.1", ClassMulticast},
		{"239.255.255.250", ClassMulticast},
		{"255.255.255.255", ClassBroadcast},
		{"240.0.0.1", ClassReserved},
		{"255.255.255.254", ClassReserved},
		{"10.0.0.1", ClassPrivate},
		{"172.16.0.1", ClassPrivate},
		{"172.31.255.255", ClassPrivate},
		{"192.168.1.1", ClassPrivate},
		{"100.64.0.1", ClassPrivate},
		{"100.127.255.255", ClassPrivate},
		{"169.254.169.254", ClassMetadata},
		{"169.254.170.2", ClassMetadata},
		{"169.254.170.23", ClassMetadata},
		{"169.254.0.23", ClassMetadata},
		{"100.100.100.200", ClassMetadata},
		{"168.63.129.16", ClassMetadata},
		{"192.0.0.192", ClassMetadata},
		// IPv6 classes.
		{"::", ClassUnspecified},
		{"::1", ClassLoopback},
		{"fe80::1", ClassLinkLocal},
		{"febf::1", ClassLinkLocal},
		{"fc00::1", ClassPrivate},
		{"fd12:3456::1", ClassPrivate},
		{"fec0::1", ClassPrivate},
		{"ff02::1", ClassMulticast},
		{"fd00:ec2::254", ClassMetadata},
		{"fd00:ec2::23", ClassMetadata},
		{"fd20:ce::254", ClassMetadata},
		{"4000::1", ClassReserved},
		{"100::1", ClassReserved},
		// IPv4 inside IPv6.
		{"::ffff:127.0.0.1", ClassLoopback},
		{"::ffff:a9fe:a9fe", ClassMetadata},
		{"::ffff:10.1.2.3", ClassPrivate},
		{"::ffff:203.0.113.10", ""},
		{"::7f00:1", ClassLoopback}, // IPv4-compatible
		{"::a9fe:a9fe", ClassMetadata},
		{"::0.0.0.2", ClassThisNetwork},
		{"::cb00:710a", ""},
		{"64:ff9b::7f00:1", ClassLoopback},
		{"64:ff9b::a9fe:a9fe", ClassMetadata},
		{"64:ff9b::a00:1", ClassPrivate},
		{"64:ff9b::cb00:710a", ""},
		{"64:ff9b::1:0:0:1", ClassReserved}, // outside the /96
		{"64:ff9b:1::7f00:1", ClassLoopback},
		{"64:ff9b:1::cb00:710a", ClassThisNetwork},             // the /64 reading is 0.0.0.203: fail closed
		{"64:ff9b:1:7f01:2:304:cb00:710a", ClassLoopback},      // only the /48 reading (127.1.2.3) is denied
		{"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", ClassBroadcast}, // every position
		{"2002:7f00:1::", ClassLoopback},
		{"2002:a9fe:a9fe::1", ClassMetadata},
		{"2002:c0a8:101::", ClassPrivate},
		{"2002:cb00:710a::1", ""},
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", ClassLoopback}, // Teredo, client 127.0.0.1
		{"2001:0:4136:e378:8000:63bf:34ff:8ff5", ""},            // Teredo, client 203.0.112.10
		// Invalid.
		{"fe80::1%eth0", ClassInvalid},
	}
	for _, tc := range tests {
		a := netip.MustParseAddr(tc.addr)
		if got := Classify(a); got != tc.want {
			t.Errorf("Classify(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got := Classify(netip.Addr{}); got != ClassInvalid {
		t.Errorf("Classify(zero) = %q, want %q", got, ClassInvalid)
	}
}

// TestClassRanges checks the range classify reports: it must contain the
// address and have the address's class throughout its first and last address.
func TestClassRanges(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "10.9.8.7", "169.254.169.254", "64:ff9b::7f00:1", "2002:7f00:1::", "::7f00:1", "fd00:ec2::254", "fe80::1"} {
		a := netip.MustParseAddr(s)
		c, r := classify(a)
		if !r.Contains(a) {
			t.Errorf("classify(%s) range %v does not contain it", s, r)
		}
		first := r.Masked().Addr()
		if got := Classify(first); got != c {
			t.Errorf("classify(%s) = %q, range %v starts with %s of class %q", s, c, r, first, got)
		}
	}
	if _, r := classify(netip.MustParseAddr("64:ff9b::7f00:1")); r != netip.MustParsePrefix("64:ff9b::7f00:0/104") {
		t.Errorf("NAT64 loopback range = %v, want 64:ff9b::7f00:0/104", r)
	}
	if _, r := classify(netip.MustParseAddr("2002:7f00:1::")); r != netip.MustParsePrefix("2002:7f00::/24") {
		t.Errorf("6to4 loopback range = %v, want 2002:7f00::/24", r)
	}
}
