package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Allow: []string{"*.com"}}, `invalid allow entry "*.com": wildcard over a public suffix`},
		{Config{Allow: []string{"example.com", "*"}}, `invalid allow entry "*": a bare wildcard`},
		{Config{Deny: []string{"example.com:0"}}, `invalid deny entry "example.com:0": port "0"`},
		{Config{Deny: []string{"**.co.uk"}}, `invalid deny entry "**.co.uk": wildcard over a public suffix`},
		{Config{DeniedResolvedAddresses: []string{"example.com"}}, `invalid denied resolved address "example.com": must be an IP address or CIDR`},
		{Config{DeniedResolvedAddresses: []string{"203.0.113.10:443"}}, `invalid denied resolved address "203.0.113.10:443": must be an IP address or CIDR without a port`},
		{Config{DeniedResolvedAddresses: []string{"203.0.113.1/24"}}, `invalid denied resolved address "203.0.113.1/24": prefix has bits set`},
		{Config{DeniedResolvedAddresses: []string{""}}, `invalid denied resolved address "": empty entry`},
	}
	for _, tc := range tests {
		p, err := New(tc.cfg)
		if err == nil {
			t.Errorf("New(%+v) = %v, want error %q", tc.cfg, p, tc.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("New(%+v): error %q, want it to start with %q", tc.cfg, err, tc.want)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	base := Config{
		Allow: []string{
			"example.com", "*.sub.example", "**.apex.example", "port.example:443",
			"bücher.example", "localhost:8080",
			"203.0.113.10", "198.51.100.0/24:443", "[2001:db8::/32]:443",
			"127.0.0.1:8080", "10.0.0.0/8", "0.0.0.0/0:8443", "169.254.0.0/16:9000",
			"169.254.169.254:9999", "[64:ff9b::7f00:0/104]:7000",
		},
		Deny:                    []string{"bad.sub.example", "**.evil.apex.example", "example.com:25", "198.51.100.66", "[2001:db8:bad::/48]"},
		DeniedResolvedAddresses: []string{"203.0.113.10/32"},
	}
	p := mustPolicy(base)
	tests := []struct {
		host   string
		port   uint16
		allow  bool
		block  Block
		reason string
		entry  string
		text   string
	}{
		// Names.
		{"example.com", 443, true, BlockNone, ReasonAllowed, "example.com", `example.com:443 is allowed by allow entry "example.com"`},
		{"EXAMPLE.com.", 80, true, BlockNone, ReasonAllowed, "example.com", ""},
		{"www.example.com", 443, false, BlockAllowlist, ReasonNotAllowed, "", "www.example.com:443 is not on the allow list"},
		{"evilexample.com", 443, false, BlockAllowlist, ReasonNotAllowed, "", ""},
		{"example.com", 25, false, BlockDenylist, ReasonDenied, "example.com:25", `example.com:25 is denied by deny entry "example.com:25"`},
		{"a.sub.example", 443, true, BlockNone, ReasonAllowed, "*.sub.example", ""},
		{"sub.example", 443, false, BlockAllowlist, ReasonNotAllowed, "", ""},
		{"bad.sub.example", 443, false, BlockDenylist, ReasonDenied, "bad.sub.example", ""},
		{"BAD.sub.example.", 443, false, BlockDenylist, ReasonDenied, "bad.sub.example", ""},
		{"x.bad.sub.example", 443, true, BlockNone, ReasonAllowed, "*.sub.example", ""},
		{"apex.example", 443, true, BlockNone, ReasonAllowed, "**.apex.example", ""},
		{"a.b.apex.example", 443, true, BlockNone, ReasonAllowed, "**.apex.example", ""},
		{"evil.apex.example", 443, false, BlockDenylist, ReasonDenied, "**.evil.apex.example", ""},
		{"x.evil.apex.example", 443, false, BlockDenylist, ReasonDenied, "**.evil.apex.example", ""},
		{"port.example", 443, true, BlockNone, ReasonAllowed, "port.example:443", ""},
		{"port.example", 80, false, BlockAllowlist, ReasonNotAllowed, "", "port.example:80 is not on the allow list"},
		{"xn--bcher-kva.example", 443, true, BlockNone, ReasonAllowed, "bücher.example", ""},
		{"localhost", 8080, true, BlockNone, ReasonAllowed, "localhost:8080", ""},
		{"localhost", 80, false, BlockAllowlist, ReasonNotAllowed, "", ""},
		// Literals: only IP/CIDR entries allow them.
		{"203.0.113.11", 80, false, BlockAllowlist, ReasonNotAllowed, "", "203.0.113.11:80 is not on the allow list"},
		{"198.51.100.7", 443, true, BlockNone, ReasonAllowed, "198.51.100.0/24:443", `198.51.100.7:443 is allowed by allow entry "198.51.100.0/24:443"`},
		{"[::ffff:198.51.100.7]", 443, true, BlockNone, ReasonAllowed, "198.51.100.0/24:443", ""},
		{"198.51.100.7", 80, false, BlockAllowlist, ReasonNotAllowed, "", ""},
		{"198.51.100.66", 443, false, BlockDenylist, ReasonDenied, "198.51.100.66", `198.51.100.66:443 is denied by deny entry "198.51.100.66"`},
		{"2001:db8::5", 443, true, BlockNone, ReasonAllowed, "[2001:db8::/32]:443", ""},
		{"[2001:db8::5]", 80, false, BlockAllowlist, ReasonNotAllowed, "", "[2001:db8::5]:80 is not on the allow list"},
		{"[2001:db8:bad::5]", 443, false, BlockDenylist, ReasonDenied, "[2001:db8:bad::/48]", ""},
		// DeniedResolvedAddresses apply to literals and win over allow.
		{"203.0.113.10", 443, false, BlockAddress, ReasonClassPrefix + ClassDenied, "203.0.113.10/32", ""},
		// Class check: an entry inside the class range passes it.
		{"127.0.0.1", 8080, true, BlockNone, ReasonAllowed, "127.0.0.1:8080", ""},
		{"[::ffff:127.0.0.1]", 8080, true, BlockNone, ReasonAllowed, "127.0.0.1:8080", ""},
		{"127.0.0.1", 80, false, BlockAllowlist, ReasonNotAllowed, "", ""},
		{"10.1.2.3", 80, true, BlockNone, ReasonAllowed, "10.0.0.0/8", ""},
		{"169.254.1.1", 9000, true, BlockNone, ReasonAllowed, "169.254.0.0/16:9000", ""},
		{"169.254.169.254", 9999, true, BlockNone, ReasonAllowed, "169.254.169.254:9999", ""},
		{"64:ff9b::7f00:1", 7000, true, BlockNone, ReasonAllowed, "[64:ff9b::7f00:0/104]:7000", ""},
		// ...an entry wider than the class does not.
		{"127.0.0.1", 8443, false, BlockAddress, ReasonClassPrefix + ClassLoopback, "", "127.0.0.1:8443 is a loopback address"},
		{"169.254.169.254", 8443, false, BlockAddress, ReasonClassPrefix + ClassMetadata, "", "169.254.169.254:8443 is a cloud metadata address"},
		{"169.254.169.254", 9000, false, BlockAddress, ReasonClassPrefix + ClassMetadata, "", ""},
		{"::ffff:a9fe:a9fe", 9000, false, BlockAddress, ReasonClassPrefix + ClassMetadata, "", ""},
		{"192.168.1.1", 8443, false, BlockAddress, ReasonClassPrefix + ClassPrivate, "", ""},
		{"0.0.0.0", 8443, false, BlockAddress, ReasonClassPrefix + ClassUnspecified, "", ""},
		{"255.255.255.255", 8443, false, BlockAddress, ReasonClassPrefix + ClassBroadcast, "", ""},
		{"203.0.113.99", 8443, true, BlockNone, ReasonAllowed, "0.0.0.0/0:8443", ""},
	}
	for _, tc := range tests {
		d := p.CheckTarget(mustTarget(tc.host, tc.port))
		if d.Allow != tc.allow || d.Block != tc.block || d.Reason != tc.reason || d.Entry != tc.entry {
			t.Errorf("CheckTarget(%s:%d) = %+v, want allow %v block %v reason %q entry %q", tc.host, tc.port, d, tc.allow, tc.block, tc.reason, tc.entry)
		}
		if tc.text != "" && d.Text != tc.text {
			t.Errorf("CheckTarget(%s:%d).Text = %q, want %q", tc.host, tc.port, d.Text, tc.text)
		}
		if d.Text == "" || strings.ContainsAny(d.Text, "\r\n") {
			t.Errorf("CheckTarget(%s:%d).Text = %q, want one non-empty line", tc.host, tc.port, d.Text)
		}
	}
}

func TestCheckTargetEmptyAllowList(t *testing.T) {
	p := mustPolicy(Config{})
	for _, tg := range []Target{mustTarget("example.com", 443), mustTarget("203.0.113.10", 443), mustTarget("localhost", 80)} {
		if d := p.CheckTarget(tg); d.Allow || d.Block != BlockAllowlist || d.Reason != ReasonNotAllowed {
			t.Errorf("empty allow list: CheckTarget(%v) = %+v, want not-allowed", tg, d)
		}
	}
	var nilPolicy *Policy
	if d := nilPolicy.CheckTarget(mustTarget("example.com", 443)); d.Allow {
		t.Errorf("nil policy allowed: %+v", d)
	}
}

func TestCheckTargetAllowPrivate(t *testing.T) {
	p := mustPolicy(Config{Allow: []string{"0.0.0.0/0", "::/0"}, AllowPrivateDestinations: true})
	tests := []struct {
		host   string
		reason string
	}{
		{"10.1.2.3", ReasonAllowed},
		{"100.64.1.1", ReasonAllowed},
		{"fd12::1", ReasonAllowed},
		{"100.100.100.200", ReasonClassPrefix + ClassMetadata},
		{"fd00:ec2::254", ReasonClassPrefix + ClassMetadata},
		{"127.0.0.1", ReasonClassPrefix + ClassLoopback},
		{"169.254.1.1", ReasonClassPrefix + ClassLinkLocal},
	}
	for _, tc := range tests {
		if d := p.CheckTarget(mustTarget(tc.host, 443)); d.Reason != tc.reason || d.Allow != (tc.reason == ReasonAllowed) {
			t.Errorf("CheckTarget(%s) = %+v, want reason %q", tc.host, d, tc.reason)
		}
	}
}

func TestCheckTargetRefusesUnnormalised(t *testing.T) {
	p := mustPolicy(Config{Allow: []string{"example.com", "203.0.113.0/24", "::ffff:0:0/96"}})
	for _, tg := range []Target{
		{Host: "EXAMPLE.com", Port: 443},
		{Host: "example.com.", Port: 443},
		{Host: "example.com", Port: 0},
		{Host: "", Port: 443},
		{Host: "203.0.113.10", Port: 443}, // a literal as a name
		{Host: "x", Addr: netip.MustParseAddr("203.0.113.10"), Port: 443},
		{Host: "::ffff:203.0.113.10", Addr: netip.MustParseAddr("::ffff:203.0.113.10"), Port: 443},
	} {
		if d := p.CheckTarget(tg); d.Allow || d.Block != BlockAddress || (d.Reason != ReasonInvalidHost) {
			t.Errorf("CheckTarget(%#v) = %+v, want invalid-host", tg, d)
		}
	}
}

func TestFilterResolved(t *testing.T) {
	p := mustPolicy(Config{
		Allow: []string{
			"**.example.com", "local.test:8080", "127.0.0.1:8080", "192.0.2.0/24:8080",
			"ten.test", "10.20.0.0/16", "198.51.100.0/24",
		},
		Deny:                    []string{"203.0.113.66", "[2001:db8:bad::/48]:443", "blocked.example.com"},
		DeniedResolvedAddresses: []string{"203.0.113.77", "2001:db8:dead::/48"},
	})
	local := addrs("127.0.0.1", "::1", "192.0.2.5", "10.20.30.40", "fe80::1%eth0")
	tests := []struct {
		name   string
		host   string
		port   uint16
		in     []netip.Addr
		want   []netip.Addr
		reason string
		block  Block
		text   string
	}{
		{name: "ordinary", host: "www.example.com", port: 443, in: addrs("203.0.113.10", "2001:db8::10"),
			want: addrs("203.0.113.10", "2001:db8::10"), reason: ReasonAllowed},
		{name: "mapped is unwrapped", host: "www.example.com", port: 443, in: addrs("::ffff:203.0.113.10"),
			want: addrs("203.0.113.10"), reason: ReasonAllowed},
		{name: "loopback", host: "www.example.com", port: 443, in: addrs("127.0.0.1"),
			reason: ReasonClassPrefix + ClassLoopback, block: BlockAddress,
			text: "www.example.com:443 resolved to 127.0.0.1, which is a loopback address"},
		{name: "mapped loopback", host: "www.example.com", port: 443, in: addrs("::ffff:127.0.0.1"),
			reason: ReasonClassPrefix + ClassLoopback, block: BlockAddress},
		{name: "metadata", host: "www.example.com", port: 80, in: addrs("169.254.169.254"),
			reason: ReasonClassPrefix + ClassMetadata, block: BlockAddress,
			text: "www.example.com:80 resolved to 169.254.169.254, which is a cloud metadata address"},
		{name: "mapped metadata", host: "www.example.com", port: 80, in: addrs("::ffff:a9fe:a9fe"),
			reason: ReasonClassPrefix + ClassMetadata, block: BlockAddress},
		{name: "nat64 loopback", host: "www.example.com", port: 80, in: addrs("64:ff9b::7f00:1"),
			reason: ReasonClassPrefix + ClassLoopback, block: BlockAddress},
		{name: "6to4 loopback", host: "www.example.com", port: 80, in: addrs("2002:7f00:1::"),
			reason: ReasonClassPrefix + ClassLoopback, block: BlockAddress},
		{name: "link-local", host: "www.example.com", port: 80, in: addrs("fe80::5"),
			reason: ReasonClassPrefix + ClassLinkLocal, block: BlockAddress},
		{name: "zoned", host: "www.example.com", port: 80, in: addrs("2001:db8::1%eth0"),
			reason: ReasonClassPrefix + ClassInvalid, block: BlockAddress},
		{name: "private", host: "www.example.com", port: 80, in: addrs("192.168.0.10"),
			reason: ReasonClassPrefix + ClassPrivate, block: BlockAddress},
		{name: "host's own address", host: "www.example.com", port: 80, in: addrs("192.0.2.5"),
			reason: ReasonClassPrefix + ClassLocalAddress, block: BlockAddress,
			text: "www.example.com:80 resolved to 192.0.2.5, which is an address of this host"},
		{name: "host's own address, CIDR entry is not exact", host: "www.example.com", port: 8080, in: addrs("192.0.2.5"),
			reason: ReasonClassPrefix + ClassLocalAddress, block: BlockAddress},
		{name: "neighbour of host under CIDR entry", host: "www.example.com", port: 8080, in: addrs("192.0.2.6"),
			want: addrs("192.0.2.6"), reason: ReasonAllowed},
		{name: "deny entry applies to resolved", host: "www.example.com", port: 443, in: addrs("203.0.113.66"),
			reason: ReasonDenied, block: BlockDenylist,
			text: `www.example.com:443 resolved to 203.0.113.66, which is denied by deny entry "203.0.113.66"`},
		{name: "deny entry with port", host: "www.example.com", port: 443, in: addrs("2001:db8:bad::1"),
			reason: ReasonDenied, block: BlockDenylist},
		{name: "deny entry other port", host: "www.example.com", port: 80, in: addrs("2001:db8:bad::1"),
			want: addrs("2001:db8:bad::1"), reason: ReasonAllowed},
		{name: "denied resolved address", host: "www.example.com", port: 443, in: addrs("203.0.113.77"),
			reason: ReasonClassPrefix + ClassDenied, block: BlockAddress},
		{name: "denied resolved CIDR", host: "www.example.com", port: 443, in: addrs("2001:db8:dead::9"),
			reason: ReasonClassPrefix + ClassDenied, block: BlockAddress},
		{name: "mixed keeps survivors in order", host: "www.example.com", port: 443,
			in:   addrs("127.0.0.1", "203.0.113.10", "169.254.169.254", "2001:db8::10", "10.0.0.1"),
			want: addrs("203.0.113.10", "2001:db8::10"), reason: ReasonAllowed},
		{name: "first refusal reported", host: "www.example.com", port: 443, in: addrs("10.0.0.1", "127.0.0.1"),
			reason: ReasonClassPrefix + ClassPrivate, block: BlockAddress},
		{name: "no addresses", host: "www.example.com", port: 443, in: nil,
			reason: ReasonNoAddress, block: BlockAddress, text: "www.example.com:443 resolved to no address"},
		{name: "name allowed, loopback with exact IP entry", host: "local.test", port: 8080, in: addrs("127.0.0.1", "::1"),
			want: addrs("127.0.0.1"), reason: ReasonAllowed},
		{name: "exact IP entry port must match", host: "www.example.com", port: 443, in: addrs("127.0.0.1"),
			reason: ReasonClassPrefix + ClassLoopback, block: BlockAddress},
		{name: "private CIDR entry passes private class", host: "ten.test", port: 443, in: addrs("10.20.1.1"),
			want: addrs("10.20.1.1"), reason: ReasonAllowed},
		{name: "private CIDR entry does not pass host's own address", host: "ten.test", port: 443, in: addrs("10.20.30.40"),
			reason: ReasonClassPrefix + ClassLocalAddress, block: BlockAddress},
		{name: "private outside CIDR entry", host: "ten.test", port: 443, in: addrs("10.30.1.1"),
			reason: ReasonClassPrefix + ClassPrivate, block: BlockAddress},
		{name: "name not allowed", host: "other.test", port: 443, in: addrs("203.0.113.10"),
			reason: ReasonNotAllowed, block: BlockAllowlist},
		{name: "name denied", host: "blocked.example.com", port: 443, in: addrs("203.0.113.10"),
			reason: ReasonDenied, block: BlockDenylist},
		{name: "literal re-checked", host: "198.51.100.9", port: 443, in: addrs("198.51.100.9"),
			want: addrs("198.51.100.9"), reason: ReasonAllowed,
			text: `198.51.100.9:443 is allowed by allow entry "198.51.100.0/24"`},
		{name: "literal not allowed", host: "203.0.113.10", port: 443, in: addrs("203.0.113.10"),
			reason: ReasonNotAllowed, block: BlockAllowlist},
		{name: "literal that is host's own address", host: "10.20.30.40", port: 443, in: addrs("10.20.30.40"),
			reason: ReasonClassPrefix + ClassLocalAddress, block: BlockAddress,
			text: "10.20.30.40:443 is an address of this host"},
		{name: "literal loopback with exact entry", host: "127.0.0.1", port: 8080, in: addrs("127.0.0.1"),
			want: addrs("127.0.0.1"), reason: ReasonAllowed},
	}
	for _, tc := range tests {
		tg := mustTarget(tc.host, tc.port)
		got, d := p.FilterResolved(tg, tc.in, local)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: FilterResolved(%v, %v) = %v, want %v", tc.name, tg, tc.in, got, tc.want)
		}
		wantAllow := len(tc.want) > 0
		if d.Allow != wantAllow || d.Reason != tc.reason || d.Block != tc.block {
			t.Errorf("%s: decision %+v, want allow %v reason %q block %v", tc.name, d, wantAllow, tc.reason, tc.block)
		}
		if tc.text != "" && d.Text != tc.text {
			t.Errorf("%s: text %q, want %q", tc.name, d.Text, tc.text)
		}
		if d.Text == "" || strings.ContainsAny(d.Text, "\r\n") {
			t.Errorf("%s: text %q, want one non-empty line", tc.name, d.Text)
		}
	}
}

func TestFilterResolvedAllowPrivate(t *testing.T) {
	p := mustPolicy(Config{Allow: []string{"**.example.com"}, AllowPrivateDestinations: true})
	in := addrs("10.0.0.1", "100.64.0.1", "fd12::1", "169.254.169.254", "100.100.100.200", "fd00:ec2::254", "127.0.0.1", "10.9.9.9")
	got, d := p.FilterResolved(mustTarget("www.example.com", 443), in, addrs("10.9.9.9"))
	if want := addrs("10.0.0.1", "100.64.0.1", "fd12::1"); !slices.Equal(got, want) || !d.Allow {
		t.Errorf("FilterResolved with allow_private_destinations = %v, %+v; want %v allowed", got, d, want)
	}
}

func TestBlockString(t *testing.T) {
	for b, want := range map[Block]string{BlockNone: "", BlockAllowlist: "blocked-by-allowlist",
		BlockDenylist: "blocked-by-denylist", BlockAddress: "blocked-by-address", Block(9): "Block(9)"} {
		if got := b.String(); got != want {
			t.Errorf("Block(%d).String() = %q, want %q", int(b), got, want)
		}
	}
}
