package policy

import (
	"net/netip"
	"sync"
)

// Address class names returned by Classify and used, after ReasonClassPrefix,
// in Decision.Reason.
const (
	ClassLoopback     = "loopback"      // 127.0.0.0/8, ::1
	ClassUnspecified  = "unspecified"   // 0.0.0.0, ::
	ClassLinkLocal    = "link-local"    // 169.254.0.0/16, fe80::/10
	ClassMulticast    = "multicast"     // 224.0.0.0/4, ff00::/8
	ClassBroadcast    = "broadcast"     // 255.255.255.255
	ClassPrivate      = "private"       // RFC 1918, 100.64.0.0/10, fc00::/7, fec0::/10
	ClassMetadata     = "metadata"      // well-known cloud metadata endpoints
	ClassThisNetwork  = "this-network"  // 0.0.0.0/8
	ClassReserved     = "reserved"      // 240.0.0.0/4; IPv6 outside 2000::/3 not otherwise named
	ClassInvalid      = "invalid"       // the zero Addr, or an address carrying a zone
	ClassLocalAddress = "local-address" // an address of one of this host's interfaces (FilterResolved only)
	ClassDenied       = "denied-address"
)

// classRange is one prefix of a class.
type classRange struct {
	prefix netip.Prefix
	class  string
}

// ranges lists prefixes in lookup order: more specific classes first.
func ranges(class string, prefixes ...string) []classRange {
	out := make([]classRange, len(prefixes))
	for i, p := range prefixes {
		out[i] = classRange{netip.MustParsePrefix(p), class}
	}
	return out
}

// v4Classes is searched in order; the first prefix containing the address
// wins. The class tables are built on first use, not at every start of
// sandgate and its sandbox init.
var v4Classes = sync.OnceValue(func() []classRange {
	return concat(
		// Cloud metadata services: AWS, GCP, Azure, OpenStack, Oracle,
		// DigitalOcean and others (169.254.169.254), AWS ECS task metadata
		// (169.254.170.2), AWS EKS pod identity (169.254.170.23), Tencent Cloud
		// (169.254.0.23), Alibaba Cloud (100.100.100.200), Azure WireServer
		// (168.63.129.16), Oracle Cloud legacy (192.0.0.192).
		ranges(ClassMetadata, "169.254.169.254/32", "169.254.170.2/32", "169.254.170.23/32",
			"169.254.0.23/32", "100.100.100.200/32", "168.63.129.16/32", "192.0.0.192/32"),
		ranges(ClassUnspecified, "0.0.0.0/32"),
		ranges(ClassThisNetwork, "0.0.0.0/8"),
		ranges(ClassLoopback, "127.0.0.0/8"),
		ranges(ClassLinkLocal, "169.254.0.0/16"),
		ranges(ClassPrivate, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"),
		ranges(ClassMulticast, "224.0.0.0/4"),
		ranges(ClassBroadcast, "255.255.255.255/32"),
		ranges(ClassReserved, "240.0.0.0/4"),
	)
})

// v6Classes is searched in order before the embedded-IPv4 forms.
var v6Classes = sync.OnceValue(func() []classRange {
	return concat(
		// AWS IMDS and EKS pod identity over IPv6, GCP metadata over IPv6.
		ranges(ClassMetadata, "fd00:ec2::254/128", "fd00:ec2::23/128", "fd20:ce::254/128"),
		ranges(ClassUnspecified, "::/128"),
		ranges(ClassLoopback, "::1/128"),
		ranges(ClassLinkLocal, "fe80::/10"),
		ranges(ClassPrivate, "fc00::/7", "fec0::/10"),
		ranges(ClassMulticast, "ff00::/8"),
	)
})

// Prefixes of IPv6 forms that embed an IPv4 address.
var (
	compatPrefix    = netip.MustParsePrefix("::/96")
	nat64Prefix     = netip.MustParsePrefix("64:ff9b::/96")
	nat64LocalUse   = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFourPrefix = netip.MustParsePrefix("2002::/16")
	teredoPrefix    = netip.MustParsePrefix("2001::/32")
	globalUnicast   = netip.MustParsePrefix("2000::/3")
)

// concat joins range lists.
func concat(lists ...[]classRange) []classRange {
	var out []classRange
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// Classify names the denied class addr falls in ("loopback", "private",
// "metadata", ...) or returns "" for an ordinary address. IPv6 forms that
// embed IPv4 are judged by the IPv4 inside.
//
// The embedded forms are IPv4-mapped (::ffff:0:0/96), IPv4-compatible
// (::/96), NAT64 (64:ff9b::/96, and 64:ff9b:1::/48 at each RFC 6052
// position), 6to4 (2002::/16) and Teredo (2001::/32, by the client address).
// Documentation ranges are ordinary. The zero Addr and addresses carrying a
// zone are ClassInvalid. Classify never returns ClassLocalAddress or
// ClassDenied; those depend on the host and the configuration.
func Classify(addr netip.Addr) string {
	c, _ := classify(addr)
	return c
}

// classify returns the class of addr and the range of that class that
// contains addr, expressed in addr's own family and form. An allow entry whose
// prefix lies inside that range names the class explicitly and so passes the
// class check.
func classify(addr netip.Addr) (string, netip.Prefix) {
	if !addr.IsValid() || addr.Zone() != "" {
		return ClassInvalid, netip.Prefix{}
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return lookupRanges(v4Classes(), addr)
	}
	if c, r := lookupRanges(v6Classes(), addr); c != "" {
		return c, r
	}
	b := addr.As16()
	switch {
	case compatPrefix.Contains(addr):
		return embedded(netip.AddrFrom4([4]byte(b[12:16])), compatPrefix, 96)
	case nat64Prefix.Contains(addr):
		return embedded(netip.AddrFrom4([4]byte(b[12:16])), nat64Prefix, 96)
	case nat64LocalUse.Contains(addr):
		// RFC 6052 positions for prefixes of length 96, 64, 56 and 48 (bits
		// 64–71 are always skipped). The operator picks one and the address
		// does not say which, so judge by all (fail closed): the address is
		// refused if any reading falls in a denied class.
		for _, v4 := range [][4]byte{
			{b[12], b[13], b[14], b[15]},
			{b[9], b[10], b[11], b[12]},
			{b[7], b[9], b[10], b[11]},
			{b[6], b[7], b[9], b[10]},
		} {
			if c, _ := classify(netip.AddrFrom4(v4)); c != "" {
				return c, netip.PrefixFrom(addr, 128)
			}
		}
		return "", netip.Prefix{}
	case sixToFourPrefix.Contains(addr):
		return embedded(netip.AddrFrom4([4]byte(b[2:6])), sixToFourPrefix, 16)
	case teredoPrefix.Contains(addr):
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		if c, _ := classify(client); c != "" {
			return c, netip.PrefixFrom(addr, 128)
		}
		return "", netip.Prefix{}
	case !globalUnicast.Contains(addr):
		return ClassReserved, netip.PrefixFrom(addr, 128)
	}
	return "", netip.Prefix{}
}

// lookupRanges returns the first class range containing addr.
func lookupRanges(list []classRange, addr netip.Addr) (string, netip.Prefix) {
	for _, r := range list {
		if r.prefix.Contains(addr) {
			return r.class, r.prefix
		}
	}
	return "", netip.Prefix{}
}

// embedded classifies v4, found at bit offset off inside an IPv6 address of
// the form outer, and translates the class range into that form.
func embedded(v4 netip.Addr, outer netip.Prefix, off int) (string, netip.Prefix) {
	c, r := lookupRanges(v4Classes(), v4)
	if c == "" {
		return "", netip.Prefix{}
	}
	b := outer.Addr().As16()
	v := r.Addr().As4()
	copy(b[off/8:off/8+4], v[:])
	return c, netip.PrefixFrom(netip.AddrFrom16(b), off+r.Bits())
}

// classText describes a class for a Decision's Text.
func classText(class string) string {
	switch class {
	case ClassLoopback:
		return "a loopback address"
	case ClassUnspecified:
		return "an unspecified address"
	case ClassLinkLocal:
		return "a link-local address"
	case ClassMulticast:
		return "a multicast address"
	case ClassBroadcast:
		return "the broadcast address"
	case ClassPrivate:
		return "a private address (allow_private_destinations is off)"
	case ClassMetadata:
		return "a cloud metadata address"
	case ClassThisNetwork:
		return `a "this network" address (0.0.0.0/8)`
	case ClassReserved:
		return "a reserved address"
	case ClassInvalid:
		return "not a usable address"
	case ClassLocalAddress:
		return "an address of this host"
	case ClassDenied:
		return "on the denied resolved addresses list"
	}
	return "in the " + class + " class"
}
