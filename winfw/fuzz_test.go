package winfw

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var fuzzAddrSeeds = []string{
	"*", "", " * ", "10.0.0.1", "10.0.0.1/255.255.255.255", "10.0.0.1/32", "127.0.0.0/8", "127.0.0.0/255.0.0.0",
	"::1", "::1/128", "::1-::1", "1.0.0.0-1.0.0.9,1.0.0.10-1.0.0.20", "1.0.0.5, 1.0.0.0-1.0.0.9",
	"0.0.0.0-255.255.255.255,::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "255.255.255.255,0.0.0.0",
	"::ffff:1.2.3.4", "fe80::1%eth0", "LocalSubnet", "1.2.3.4-1.2.3.3", "1.2.3.4/255.0.255.0", "1.2.3.4/-0",
	"2001:db8::/32,2001:db9::-2001:dbf::", "1.2.3.4,", ",",
}

var fuzzPortSeeds = []string{
	"*", "", "80", "1-1079,1081-3127", "0-65535", "1-65535", " 80 , 81 ", "65535,0", "80-79", "RPC", "1-", "-1",
	"80,80,79-81", "65536", "+80", "0080",
}

// checkRanges fails unless rs are disjoint, non-adjacent and sorted, each of
// one family and without a zone.
func checkRanges(t *testing.T, s string, rs []addrRange) {
	t.Helper()
	for i, r := range rs {
		if !r.lo.IsValid() || !r.hi.IsValid() || r.lo.Is4() != r.hi.Is4() || r.lo.Compare(r.hi) > 0 || r.lo.Zone() != "" || r.hi.Zone() != "" {
			t.Fatalf("parseAddrRanges(%q): bad range %v-%v", s, r.lo, r.hi)
		}
		if i > 0 {
			p := rs[i-1]
			if p.hi.Is4() == r.lo.Is4() && (p.hi.Compare(r.lo) >= 0 || p.hi.Next() == r.lo) {
				t.Fatalf("parseAddrRanges(%q): %v-%v and %v-%v not merged", s, p.lo, p.hi, r.lo, r.hi)
			}
			if p.lo.Compare(r.lo) >= 0 {
				t.Fatalf("parseAddrRanges(%q): not sorted", s)
			}
		}
	}
}

// covers reports whether a is in one of rs.
func covers(rs []addrRange, a netip.Addr) bool {
	return slices.ContainsFunc(rs, func(r addrRange) bool { return r.lo.Compare(a) <= 0 && a.Compare(r.hi) <= 0 })
}

// FuzzAddresses checks the address lists read back from Windows Firewall:
// the parsed ranges are canonical, reading them written out again gives
// the same ranges, and a list joined from two covers exactly what both do.
func FuzzAddresses(f *testing.F) {
	for i, s := range fuzzAddrSeeds {
		f.Add(s, fuzzAddrSeeds[(i+3)%len(fuzzAddrSeeds)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ra, err := parseAddrRanges(a)
		strs, err2 := ParseAddresses(a)
		if (err == nil) != (err2 == nil) || SameAddresses(a, a) != (err == nil) {
			t.Fatalf("%q: parseAddrRanges error %v, ParseAddresses error %v", a, err, err2)
		}
		if err != nil {
			if ra != nil || strs != nil {
				t.Fatalf("parseAddrRanges(%q) = %v with error %v", a, ra, err)
			}
			return
		}
		checkRanges(t, a, ra)
		if len(ra) == 0 {
			t.Fatalf("parseAddrRanges(%q): no ranges", a)
		}
		back := strings.Join(strs, ",")
		again, err := ParseAddresses(back)
		if err != nil || !slices.Equal(again, strs) || !SameAddresses(a, back) {
			t.Fatalf("ParseAddresses(%q) = %q, joined %q, parsed %q, %v", a, strs, back, again, err)
		}

		isAll := func(s string) bool { s = strings.TrimSpace(s); return s == "" || s == "*" }
		rb, err := parseAddrRanges(b)
		if err != nil || isAll(a) || isAll(b) {
			return
		}
		joined := a + "," + b
		ru, err := parseAddrRanges(joined)
		if err != nil {
			t.Fatalf("parseAddrRanges(%q): %v, though both halves parse", joined, err)
		}
		checkRanges(t, joined, ru)
		// The union covers the ends of every range of either half, and each
		// of its range ends is in one half.
		for _, r := range append(slices.Clone(ra), rb...) {
			if !covers(ru, r.lo) || !covers(ru, r.hi) {
				t.Fatalf("parseAddrRanges(%q) = %v lacks %v-%v", joined, ru, r.lo, r.hi)
			}
		}
		for _, r := range ru {
			for _, x := range []netip.Addr{r.lo, r.hi} {
				if !covers(ra, x) && !covers(rb, x) {
					t.Fatalf("parseAddrRanges(%q) covers %v, which neither half does", joined, x)
				}
			}
		}
		strsB, _ := ParseAddresses(b)
		if !SameAddresses(joined, back+","+strings.Join(strsB, ",")) || !SameAddresses(joined, b+","+a) {
			t.Fatalf("%q is not the union of its halves", joined)
		}
	})
}

// portSet returns the ports a list covers.
func portSet(rs [][2]int) *[65536]bool {
	var m [65536]bool
	for _, r := range rs {
		for p := r[0]; p <= r[1]; p++ {
			m[p] = true
		}
	}
	return &m
}

// FuzzPorts checks the port lists read back from Windows Firewall: the
// parsed ranges are canonical and within 0-65535, reading them written out
// again gives the same ranges, and a list joined from two covers exactly
// the ports either does.
func FuzzPorts(f *testing.F) {
	for i, s := range fuzzPortSeeds {
		f.Add(s, fuzzPortSeeds[(i+5)%len(fuzzPortSeeds)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ra, err := ParsePorts(a)
		if SamePorts(a, a) != (err == nil) {
			t.Fatalf("SamePorts(%q, itself) with parse error %v", a, err)
		}
		if err != nil {
			if ra != nil {
				t.Fatalf("ParsePorts(%q) = %v with error %v", a, ra, err)
			}
			return
		}
		if len(ra) == 0 {
			t.Fatalf("ParsePorts(%q): no ranges", a)
		}
		var parts []string
		for i, r := range ra {
			if r[0] < 0 || r[1] > 65535 || r[0] > r[1] || i > 0 && r[0] <= ra[i-1][1]+1 {
				t.Fatalf("ParsePorts(%q) = %v: not canonical", a, ra)
			}
			parts = append(parts, strconv.Itoa(r[0])+"-"+strconv.Itoa(r[1]))
		}
		back := strings.Join(parts, ",")
		if again, err := ParsePorts(back); err != nil || !slices.Equal(again, ra) {
			t.Fatalf("ParsePorts(%q) = %v, written %q, parsed %v, %v", a, ra, back, again, err)
		}

		isAll := func(s string) bool { s = strings.TrimSpace(s); return s == "" || s == "*" }
		rb, err := ParsePorts(b)
		if err != nil || isAll(a) || isAll(b) || len(a)+len(b) > 200 {
			return
		}
		joined := a + "," + b
		ru, err := ParsePorts(joined)
		if err != nil {
			t.Fatalf("ParsePorts(%q): %v, though both halves parse", joined, err)
		}
		sa, sb, su := portSet(ra), portSet(rb), portSet(ru)
		for p := range su {
			if su[p] != (sa[p] || sb[p]) {
				t.Fatalf("ParsePorts(%q) = %v: port %d covered %v, halves %v and %v", joined, ru, p, su[p], sa[p], sb[p])
			}
		}
		if !SamePorts(joined, b+","+a) {
			t.Fatalf("%q and its halves swapped differ", joined)
		}
	})
}
