package synthaddr

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// V4Range is 198.18.0.0/15, the IPv4 block synthetic addresses come from.
var V4Range = netip.MustParsePrefix("198.18.0.0/15")

// V4SlotBits is the prefix length of a V4Slot: 32 slots of 4093 names
// each.
const V4SlotBits = 20

// V4Slots is the number of slots V4Range splits into.
const V4Slots = 1 << (V4SlotBits - 15)

// V4Slot returns the slot-th /20 of V4Range (slot in [0, V4Slots)), for
// runs that share one network namespace and so need disjoint ranges (the
// identity backend can derive the slot from its reserved proxy ports).
func V4Slot(slot int) (netip.Prefix, error) {
	if slot < 0 || slot >= V4Slots {
		return netip.Prefix{}, fmt.Errorf("synthetic IPv4 slot %d: want 0 to %d", slot, V4Slots-1)
	}
	base := binary.BigEndian.Uint32(as4(V4Range.Addr())) + uint32(slot)<<(32-V4SlotBits)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], base)
	return netip.PrefixFrom(netip.AddrFrom4(b), V4SlotBits), nil
}

// RandomULA returns a random unique-local /64 (RFC 4193: fd00::/8, a
// 40-bit random global ID and a random 16-bit subnet ID) for one run's
// IPv6 synthetic addresses.
func RandomULA() (netip.Prefix, error) {
	var b [16]byte
	if _, err := rand.Read(b[1:8]); err != nil {
		return netip.Prefix{}, fmt.Errorf("random unique-local prefix: %w", err)
	}
	b[0] = 0xfd
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), nil
}

// NewRun makes a pool for one run with its own network namespace: all of
// V4Range and a RandomULA /64, with the other defaults.
func NewRun() (*Pool, error) {
	v6, err := RandomULA()
	if err != nil {
		return nil, err
	}
	return New(Config{V4: V4Range, V6: v6})
}

// as4 returns the four bytes of an IPv4 address.
func as4(a netip.Addr) []byte {
	b := a.As4()
	return b[:]
}

// addr4 is the IPv4 address of index.
func (p *Pool) addr4(index uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(as4(p.v4.Addr()))+index)
	return netip.AddrFrom4(b)
}

// addr6 is the IPv6 address of index: the prefix's base plus index, in the
// low 64 bits (New checked that the prefix leaves room for every index).
func (p *Pool) addr6(index uint32) netip.Addr {
	b := p.v6.Addr().As16()
	binary.BigEndian.PutUint64(b[8:], binary.BigEndian.Uint64(b[8:])+uint64(index))
	return netip.AddrFrom16(b)
}

// indexOf returns the index of ip in the pool's ranges, if it is a usable
// one (allocated or not).
func (p *Pool) indexOf(ip netip.Addr) (uint32, bool) {
	ip = ip.Unmap().WithZone("")
	var off uint64
	switch {
	case p.v4.Contains(ip):
		off = uint64(binary.BigEndian.Uint32(as4(ip)) - binary.BigEndian.Uint32(as4(p.v4.Addr())))
	case p.v6.IsValid() && p.v6.Contains(ip):
		a, base := ip.As16(), p.v6.Addr().As16()
		if binary.BigEndian.Uint64(a[:8]) != binary.BigEndian.Uint64(base[:8]) {
			return 0, false // inside a prefix shorter than /64 but beyond any index
		}
		off = binary.BigEndian.Uint64(a[8:]) - binary.BigEndian.Uint64(base[8:])
	default:
		return 0, false
	}
	if off < firstIndex || off >= firstIndex+uint64(p.size) {
		return 0, false
	}
	return uint32(off), true
}
