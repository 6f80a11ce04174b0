// Package synthaddr hands out, for one run, synthetic addresses that stand
// for host names the policy allows, and maps them back to the name.
//
// The DNS stub answers an allowed name with the name's synthetic IPv4 and
// IPv6 address; when CMD connects to one, the transparent TCP path calls
// Acquire (or Lookup) to learn which name was meant, decides with the
// policy on that name, and dials it as the proxy does. A synthetic address
// is never dialled itself, and literal-IP policy rules never apply to it
// (see Pool.Contains).
//
// # Addresses
//
// Each mapping has one index, i, and one address in each family: the
// IPv4 prefix's base plus i and the IPv6 prefix's base plus i. IPv4 comes
// from 198.18.0.0/15 (V4Range, RFC 2544's benchmarking block, which IANA
// lists as not globally routable, so no real destination is ever shadowed),
// either whole (netns backend: each run has its own network namespace) or one
// V4Slot of it per concurrent run (identity backend: runs share the host's
// namespace, so their ranges must not overlap). IPv6 comes from a random
// unique-local /64 (RandomULA, RFC 4193): fc00::/7 is never routed on the
// internet, and 40 random bits of global ID make each run's range its own,
// so an address learnt in one run means nothing in another. The first and
// last address of the IPv4 range are never used, and the second of each
// range is SelfAddrs, the sandbox's own (for getaddrinfo's AI_ADDRCONFIG);
// names get the others.
//
// # Exhaustion
//
// A pool holds at most Config.Max mappings (DefaultMax), fewer if the IPv4
// prefix is smaller. When every index is taken, a new name recycles the
// least recently used mapping that no connection holds (Acquire) and that
// has been idle (neither answered nor held) for at least Config.MinIdle
// (DefaultMinIdle, far above the DNS TTL). When there is none, Allocate
// fails with ErrExhausted, and the DNS stub answers SERVFAIL and reports it:
// exhaustion is never silent and never breaks a live connection. Mappings
// made by Reserve (hosts-file names) are never recycled, because the
// sandbox's hosts file names their addresses for the whole run.
package synthaddr

import (
	"container/list"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Defaults for Config.
const (
	DefaultMax     = 16384            // mappings per pool
	DefaultMinIdle = 60 * time.Second // idle time before a mapping may be recycled
)

// ErrExhausted is returned by Allocate and Reserve when every address is
// taken by a mapping that may not be recycled yet.
var ErrExhausted = errors.New("synthetic address range exhausted")

// Config describes a Pool. V4 is required.
type Config struct {
	V4      netip.Prefix     // IPv4 range, at most /30; its first and last addresses are never used, and the second is SelfAddrs
	V6      netip.Prefix     // IPv6 range with at least as many addresses as V4; zero means no IPv6 addresses
	Max     int              // most mappings at once; 0 means DefaultMax
	MinIdle time.Duration    // see the package doc; 0 means DefaultMinIdle
	Now     func() time.Time // nil means time.Now; tests set it
}

// Mapping is one name and its synthetic addresses.
type Mapping struct {
	Name  string       // the host name, as given to Allocate or Reserve
	V4    netip.Addr   // its synthetic IPv4 address
	V6    netip.Addr   // its synthetic IPv6 address; invalid when the pool has no IPv6 range
	Hosts []netip.Addr // the hosts-file addresses given to Reserve (the TCP side dials these instead of resolving); nil otherwise
}

// Stats counts a pool's work.
type Stats struct {
	Mappings  int    // mappings now
	Reserved  int    // of which made by Reserve
	Held      int    // mappings held by at least one connection
	Recycled  uint64 // mappings recycled for a new name
	Exhausted uint64 // allocations refused with ErrExhausted
}

// Pool is one run's synthetic address space. It is safe for concurrent use.
type Pool struct {
	v4, v6  netip.Prefix
	size    uint32 // indexes firstIndex to firstIndex+size-1 are handed out
	minIdle time.Duration
	now     func() time.Time

	mu        sync.Mutex
	byName    map[string]*entry
	byIndex   map[uint32]*entry
	next      uint32     // next never-used index
	idle      *list.List // entries that may be recycled, least recently used first
	held      int
	reserved  int
	recycled  uint64
	exhausted uint64
}

// entry is one mapping inside the pool.
type entry struct {
	name     string
	index    uint32
	hosts    []netip.Addr
	reserved bool          // made or adopted by Reserve: never recycled
	holds    int           // live Acquire holds
	lastUsed time.Time     // last answer, Acquire or release
	elem     *list.Element // in Pool.idle while recyclable
}

// New makes a pool from c.
func New(c Config) (*Pool, error) {
	if !c.V4.IsValid() || !c.V4.Addr().Is4() || c.V4.Masked() != c.V4 || c.V4.Bits() > 30 {
		return nil, fmt.Errorf("synthetic IPv4 range %v: want a masked IPv4 prefix of at most /30", c.V4)
	}
	hostBits := 32 - c.V4.Bits()
	if c.V6.IsValid() {
		a := c.V6.Addr()
		if !a.Is6() || a.Is4In6() || c.V6.Masked() != c.V6 || 128-c.V6.Bits() < hostBits {
			return nil, fmt.Errorf("synthetic IPv6 range %v: want a masked IPv6 prefix with at least %d host bits", c.V6, hostBits)
		}
	}
	if c.Max < 0 {
		return nil, fmt.Errorf("synthetic pool: negative Max %d", c.Max)
	}
	max := c.Max
	if max == 0 {
		max = DefaultMax
	}
	size := uint64(1)<<hostBits - 3 // all but the first, SelfAddrs and the last
	if uint64(max) < size {
		size = uint64(max)
	}
	p := &Pool{
		v4: c.V4, v6: c.V6, size: uint32(size),
		minIdle: c.MinIdle, now: c.Now,
		byName: make(map[string]*entry), byIndex: make(map[uint32]*entry),
		next: firstIndex, idle: list.New(),
	}
	if p.minIdle <= 0 {
		p.minIdle = DefaultMinIdle
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// selfIndex is the index of SelfAddrs; names get the indexes from
// firstIndex on.
const (
	selfIndex  = 1
	firstIndex = 2
)

// SelfAddrs returns the second address of each range (the IPv6 one invalid
// when the pool has none), which no name is ever given. A sandbox whose
// only interface is loopback should carry them (as /32 and /128, on lo or
// on the interface the synthetic routes use): glibc's and Node's
// getaddrinfo with AI_ADDRCONFIG discard every address of a family the
// host has no non-loopback address of, so without them even an allowed
// name, or a hosts-file one, does not resolve.
func (p *Pool) SelfAddrs() (v4, v6 netip.Addr) {
	v4 = p.addr4(selfIndex)
	if p.v6.IsValid() {
		v6 = p.addr6(selfIndex)
	}
	return v4, v6
}

// Prefixes returns the pool's IPv4 range and IPv6 range (zero if none).
func (p *Pool) Prefixes() (v4, v6 netip.Prefix) { return p.v4, p.v6 }

// Contains reports whether ip lies in one of the pool's ranges, allocated or
// not (an IPv4-mapped IPv6 address counts as its IPv4 address). A
// connection to such an address must be decided by the name Lookup gives,
// or refused when Lookup knows none; literal-IP rules never apply to it.
func (p *Pool) Contains(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	return p.v4.Contains(ip) || (p.v6.IsValid() && p.v6.Contains(ip))
}

// Allocate returns the mapping of name, making one if there is none, and
// marks it used now. The same name gets the same addresses for as long as
// its mapping lives (for the whole run unless the range fills up; see the
// package doc). It fails with ErrExhausted when no address is free. name
// should already be normalised (the DNS stub passes policy-normalised
// names); the pool compares names byte for byte.
func (p *Pool) Allocate(name string) (Mapping, error) {
	return p.get(name, false, nil)
}

// Reserve is Allocate for a hosts-file name: the mapping also remembers
// hosts (the addresses the hosts file gives the name, which the TCP side
// dials instead of resolving the name) and is never recycled. Reserving a
// name again appends the new addresses that it does not have yet.
func (p *Pool) Reserve(name string, hosts []netip.Addr) (Mapping, error) {
	return p.get(name, true, hosts)
}

// get is Allocate (reserve false) and Reserve.
func (p *Pool) get(name string, reserve bool, hosts []netip.Addr) (Mapping, error) {
	if name == "" {
		return Mapping{}, errors.New("synthetic pool: empty name")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e, err := p.entryFor(name)
	if err != nil {
		return Mapping{}, err
	}
	if reserve && !e.reserved {
		e.reserved = true
		p.reserved++
		if e.elem != nil {
			p.idle.Remove(e.elem)
			e.elem = nil
		}
	}
	for _, a := range hosts {
		if !slices.Contains(e.hosts, a) {
			e.hosts = append(e.hosts, a)
		}
	}
	p.touch(e)
	return p.mapping(e), nil
}

// Lookup returns the name a synthetic address stands for and the
// hosts-file addresses of that name (nil when the name came from DNS and
// must be resolved). ok is false when ip is not a live mapping of this pool.
// It does not hold the mapping; the TCP side should use Acquire.
func (p *Pool) Lookup(ip netip.Addr) (name string, hosts []netip.Addr, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entryAt(ip)
	if e == nil {
		return "", nil, false
	}
	return e.name, slices.Clone(e.hosts), true
}

// Acquire is Lookup that also holds the mapping so that it cannot be
// recycled while a connection uses it. release ends the hold; it may be
// called more than once and from any goroutine. On !ok, release is a no-op.
func (p *Pool) Acquire(ip netip.Addr) (m Mapping, release func(), ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entryAt(ip)
	if e == nil {
		return Mapping{}, func() {}, false
	}
	if e.holds == 0 {
		p.held++
		if e.elem != nil {
			p.idle.Remove(e.elem)
			e.elem = nil
		}
	}
	e.holds++
	e.lastUsed = p.now()
	var once sync.Once
	return p.mapping(e), func() { once.Do(func() { p.release(e) }) }, true
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Mappings: len(p.byName), Reserved: p.reserved, Held: p.held,
		Recycled: p.recycled, Exhausted: p.exhausted}
}

// release ends one hold of e.
func (p *Pool) release(e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.holds--
	if e.holds > 0 {
		return
	}
	p.held--
	p.touch(e)
}

// entryFor returns name's entry, creating it on a fresh or recycled index.
// p.mu is held.
func (p *Pool) entryFor(name string) (*entry, error) {
	if e := p.byName[name]; e != nil {
		return e, nil
	}
	var index uint32
	switch {
	case p.next < firstIndex+p.size:
		index = p.next
		p.next++
	default:
		old := p.recyclable()
		if old == nil {
			p.exhausted++
			return nil, fmt.Errorf("no synthetic address for %s: all %d are in use: %w", name, p.size, ErrExhausted)
		}
		p.idle.Remove(old.elem)
		delete(p.byName, old.name)
		delete(p.byIndex, old.index)
		p.recycled++
		index = old.index
	}
	e := &entry{name: name, index: index}
	p.byName[name] = e
	p.byIndex[index] = e
	return e, nil
}

// recyclable returns the least recently used entry that may be recycled
// now, or nil. p.mu is held.
func (p *Pool) recyclable() *entry {
	front := p.idle.Front()
	if front == nil {
		return nil
	}
	e := front.Value.(*entry)
	if p.now().Sub(e.lastUsed) < p.minIdle {
		return nil
	}
	return e
}

// touch marks e used now and, when it is recyclable, moves it to the back
// of the idle list. p.mu is held.
func (p *Pool) touch(e *entry) {
	e.lastUsed = p.now()
	if e.reserved || e.holds > 0 {
		return
	}
	if e.elem == nil {
		e.elem = p.idle.PushBack(e)
	} else {
		p.idle.MoveToBack(e.elem)
	}
}

// entryAt returns the live entry whose address is ip, or nil. p.mu is held.
func (p *Pool) entryAt(ip netip.Addr) *entry {
	index, ok := p.indexOf(ip)
	if !ok {
		return nil
	}
	return p.byIndex[index]
}

// mapping makes the caller's copy of e. p.mu is held.
func (p *Pool) mapping(e *entry) Mapping {
	m := Mapping{Name: e.name, V4: p.addr4(e.index), Hosts: slices.Clone(e.hosts)}
	if p.v6.IsValid() {
		m.V6 = p.addr6(e.index)
	}
	return m
}
