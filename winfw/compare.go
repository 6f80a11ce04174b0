package winfw

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/sandgate/sandgate/winsec"
)

// Observed is a rule as read back from Windows Firewall: the fields
// sandgate sets, and every field that, when set, would narrow which
// traffic a rule matches (and so loosen a block rule).
type Observed struct {
	Rule
	ApplicationName             string
	ServiceName                 string
	LocalAppPackageID           string
	LocalUserOwner              string
	RemoteMachineAuthorizedList string
	RemoteUserAuthorizedList    string
	LocalAddresses              string
	LocalPorts                  string
	// Interfaces reports whether the rule is limited to named interfaces.
	Interfaces    bool
	EdgeTraversal bool
	SecureFlags   int32
}

// Compare returns, in words, every way got differs from want; nil when got
// blocks exactly the traffic want blocks. Address and port lists are
// compared as sets (Windows rewrites "a" as "a/255.255.255.255" and may
// reorder or merge ranges); the user condition is compared as a security
// descriptor. The description is not compared.
func Compare(want Rule, got Observed) []string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	if got.Name != want.Name {
		add("name is %q, want %q", got.Name, want.Name)
	}
	if got.Grouping != want.Grouping {
		add("group is %q, want %q", got.Grouping, want.Grouping)
	}
	if !got.Enabled {
		add("rule is disabled")
	}
	if got.Direction != want.Direction {
		add("direction is %d, want %d (outbound)", got.Direction, want.Direction)
	}
	if got.Action != want.Action {
		add("action is %d, want %d (block)", got.Action, want.Action)
	}
	if got.Protocol != want.Protocol {
		add("protocol is %d, want %d", got.Protocol, want.Protocol)
	}
	if !SameAddresses(got.RemoteAddresses, want.RemoteAddresses) {
		add("remote addresses are %q, want %q", got.RemoteAddresses, want.RemoteAddresses)
	}
	if want.RemotePorts != "" || hasPorts(want.Protocol) {
		if !SamePorts(got.RemotePorts, orAny(want.RemotePorts)) {
			add("remote ports are %q, want %q", got.RemotePorts, want.RemotePorts)
		}
	}
	if hasPorts(want.Protocol) && !SamePorts(got.LocalPorts, "*") {
		add("local ports are %q, want every port", got.LocalPorts)
	}
	if isICMP(want.Protocol) && !isAny(got.IcmpTypesAndCodes) {
		add("ICMP types are %q, want every type", got.IcmpTypesAndCodes)
	}
	if err := checkUser(got.LocalUserAuthorizedList, want.LocalUserAuthorizedList); err != nil {
		add("%v", err)
	}
	if got.Profiles&profileBits != profileBits {
		add("profiles are %#x, want all (domain, private and public)", got.Profiles)
	}
	if !strings.EqualFold(got.InterfaceTypes, "All") {
		add("interface types are %q, want All", got.InterfaceTypes)
	}
	if !SameAddresses(got.LocalAddresses, "*") {
		add("local addresses are %q, want every address", got.LocalAddresses)
	}
	for _, f := range []struct{ name, v string }{
		{"application", got.ApplicationName},
		{"service", got.ServiceName},
		{"app package", got.LocalAppPackageID},
		{"owner", got.LocalUserOwner},
		{"remote machines", got.RemoteMachineAuthorizedList},
		{"remote users", got.RemoteUserAuthorizedList},
	} {
		if f.v != "" {
			add("limited to %s %q, want no such limit", f.name, f.v)
		}
	}
	if got.Interfaces {
		add("limited to named interfaces")
	}
	if got.EdgeTraversal {
		add("edge traversal is on")
	}
	if got.SecureFlags != 0 {
		add("secure flags are %#x, want none", got.SecureFlags)
	}
	return d
}

// checkUser compares two user conditions: both must select exactly the
// same single user.
func checkUser(got, want string) error {
	w, err := winsec.ParseDACL(want)
	if err != nil || len(w.ACEs) != 1 {
		return fmt.Errorf("wanted user condition %q is not one user", want)
	}
	if err := winsec.CheckUserMatch(got, w.ACEs[0].SID); err != nil {
		return fmt.Errorf("user condition: %w", err)
	}
	return nil
}

func hasPorts(proto int32) bool { return proto == ProtocolTCP || proto == ProtocolUDP }
func isICMP(proto int32) bool   { return proto == ProtocolICMPv4 || proto == ProtocolICMPv6 }
func isAny(s string) bool       { return strings.TrimSpace(s) == "*" || strings.TrimSpace(s) == "" }
func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ lo, hi netip.Addr }

// ParseAddresses parses a Windows Firewall address list into merged,
// sorted ranges. "*" (or "") is every IPv4 and IPv6 address. Keywords
// such as LocalSubnet or DNS are refused: sandgate never sets them, and
// their meaning changes with the network.
func ParseAddresses(s string) ([]string, error) {
	rs, err := parseAddrRanges(s)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.lo.String() + "-" + r.hi.String()
	}
	return out, nil
}

func parseAddrRanges(s string) ([]addrRange, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return []addrRange{
			{netip.IPv4Unspecified(), netip.AddrFrom4([4]byte{255, 255, 255, 255})},
			{netip.IPv6Unspecified(), netip.AddrFrom16([16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})},
		}, nil
	}
	var rs []addrRange
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		r, err := parseAddrToken(tok)
		if err != nil {
			return nil, fmt.Errorf("address list %q: %w", s, err)
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.lo.Compare(b.lo) })
	var out []addrRange
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].hi.Is4() == r.lo.Is4() {
			last := &out[n-1]
			next := last.hi.Next()
			if r.lo.Compare(last.hi) <= 0 || (next.IsValid() && next == r.lo) {
				if r.hi.Compare(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func parseAddrToken(tok string) (addrRange, error) {
	if lo, hi, ok := strings.Cut(tok, "-"); ok {
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(hi)
		if err1 != nil || err2 != nil || a.Is4() != b.Is4() || a.Compare(b) > 0 || a.Zone() != "" || b.Zone() != "" {
			return addrRange{}, fmt.Errorf("bad address range %q", tok)
		}
		return addrRange{a, b}, nil
	}
	if addr, mask, ok := strings.Cut(tok, "/"); ok {
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" {
			return addrRange{}, fmt.Errorf("bad subnet %q", tok)
		}
		bitsLen := -1
		if n, err := strconv.Atoi(mask); err == nil {
			bitsLen = n
		} else if m, err := netip.ParseAddr(mask); err == nil && m.Is4() && a.Is4() {
			bitsLen = maskLen(m.As4())
		}
		p, err := a.Prefix(bitsLen)
		if bitsLen < 0 || err != nil {
			return addrRange{}, fmt.Errorf("bad subnet %q", tok)
		}
		return addrRange{p.Addr(), lastAddr(p)}, nil
	}
	a, err := netip.ParseAddr(tok)
	if err != nil || a.Zone() != "" {
		return addrRange{}, fmt.Errorf("unsupported address %q", tok)
	}
	return addrRange{a, a}, nil
}

// maskLen returns the prefix length of a contiguous IPv4 mask, or -1.
func maskLen(m [4]byte) int {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	n := bits.LeadingZeros32(^v)
	if v<<n != 0 {
		return -1
	}
	return n
}

// lastAddr returns the last address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// SameAddresses reports whether two Windows address lists cover the same
// addresses. Unparsable lists are never the same as anything.
func SameAddresses(a, b string) bool {
	x, err1 := ParseAddresses(a)
	y, err2 := ParseAddresses(b)
	return err1 == nil && err2 == nil && slices.Equal(x, y)
}

// ParsePorts parses a Windows port list ("*", "80", "1-1079,1081-3127")
// into merged, sorted ranges; "*" and "" are 0-65535. Keywords such as RPC
// or IPHTTPS are refused.
func ParsePorts(s string) ([][2]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return [][2]int{{0, 65535}}, nil
	}
	var rs [][2]int
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		lo, hi, isRange := strings.Cut(tok, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil || a > b {
			return nil, fmt.Errorf("port list %q: bad entry %q", s, tok)
		}
		rs = append(rs, [2]int{int(a), int(b)})
	}
	slices.SortFunc(rs, func(x, y [2]int) int { return x[0] - y[0] })
	var out [][2]int
	for _, r := range rs {
		if n := len(out); n > 0 && r[0] <= out[n-1][1]+1 {
			out[n-1][1] = max(out[n-1][1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// SamePorts reports whether two Windows port lists cover the same ports.
// "*" is every port, 0 included, so it equals "0-65535" but not "1-65535".
func SamePorts(a, b string) bool {
	x, err1 := ParsePorts(a)
	y, err2 := ParsePorts(b)
	return err1 == nil && err2 == nil && slices.Equal(x, y)
}
