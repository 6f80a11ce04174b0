package synthaddr

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

// smallPool is a pool of five names (a /29) with a fake clock.
func smallPool(t *testing.T) (*Pool, *fakeClock) {
	t.Helper()
	clk := newClock()
	p, err := New(Config{
		V4:      netip.MustParsePrefix("198.18.0.0/29"),
		V6:      netip.MustParsePrefix("fd12:3456:789a:1::/64"),
		MinIdle: time.Minute,
		Now:     clk.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, clk
}

func mustAllocate(t *testing.T, p *Pool, name string) Mapping {
	t.Helper()
	m, err := p.Allocate(name)
	if err != nil {
		t.Fatalf("Allocate(%q): %v", name, err)
	}
	return m
}

func TestAllocateStableAndReversible(t *testing.T) {
	p, _ := smallPool(t)
	a := mustAllocate(t, p, "a.example")
	b := mustAllocate(t, p, "b.example")
	if a.V4 != netip.MustParseAddr("198.18.0.2") || a.V6 != netip.MustParseAddr("fd12:3456:789a:1::2") {
		t.Errorf("first mapping = %v %v, want 198.18.0.2 fd12:3456:789a:1::2", a.V4, a.V6)
	}
	if v4, v6 := p.SelfAddrs(); v4 != netip.MustParseAddr("198.18.0.1") || v6 != netip.MustParseAddr("fd12:3456:789a:1::1") {
		t.Errorf("SelfAddrs = %v %v", v4, v6)
	}
	if a.V4 == b.V4 || a.V6 == b.V6 {
		t.Fatalf("two names share an address: %+v %+v", a, b)
	}
	if again := mustAllocate(t, p, "a.example"); again.V4 != a.V4 || again.V6 != a.V6 {
		t.Errorf("same name, new addresses: %+v then %+v", a, again)
	}
	for _, ip := range []netip.Addr{a.V4, a.V6, netip.AddrFrom16(a.V4.As16())} {
		name, hosts, ok := p.Lookup(ip)
		if !ok || name != "a.example" || hosts != nil {
			t.Errorf("Lookup(%v) = %q %v %v, want a.example nil true", ip, name, hosts, ok)
		}
		if !p.Contains(ip) {
			t.Errorf("Contains(%v) = false", ip)
		}
	}
	if st := p.Stats(); st.Mappings != 2 {
		t.Errorf("Stats().Mappings = %d, want 2", st.Mappings)
	}
}

func TestContainsAndUnknown(t *testing.T) {
	p, _ := smallPool(t)
	mustAllocate(t, p, "a.example")
	cases := []struct {
		ip       string
		contains bool
	}{
		{"198.18.0.0", true}, // network address: ours, never allocated
		{"198.18.0.1", true}, // SelfAddrs: ours, never allocated
		{"198.18.0.3", true}, // in range, not allocated
		{"198.18.0.7", true},
		{"198.18.0.8", false},
		{"203.0.113.1", false},
		{"fd12:3456:789a:1::1", true},
		{"fd12:3456:789a:1::3", true},
		{"fd12:3456:789a:1:1::1", true}, // in the /64 beyond every index
		{"fd12:3456:789a:2::1", false},
		{"2001:db8::1", false},
		{"::ffff:198.18.0.3", true},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		if got := p.Contains(ip); got != c.contains {
			t.Errorf("Contains(%s) = %v, want %v", c.ip, got, c.contains)
		}
		if name, _, ok := p.Lookup(ip); ok {
			t.Errorf("Lookup(%s) = %q, want no mapping", c.ip, name)
		}
		if _, release, ok := p.Acquire(ip); ok {
			release()
			t.Errorf("Acquire(%s) succeeded, want no mapping", c.ip)
		}
	}
}

func TestFloodExhaustsLoudlyThenRecyclesLRU(t *testing.T) {
	p, clk := smallPool(t)
	var first [5]Mapping
	for i := range first {
		first[i] = mustAllocate(t, p, fmt.Sprintf("n%d.example", i))
		clk.advance(time.Second)
	}
	// Full, and nothing has been idle for MinIdle: refused, never silent.
	_, err := p.Allocate("flood.example")
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("Allocate on a full pool = %v, want ErrExhausted", err)
	}
	if st := p.Stats(); st.Exhausted != 1 || st.Recycled != 0 || st.Mappings != 5 {
		t.Errorf("Stats after exhaustion = %+v", st)
	}
	// The existing names still work, and keep their addresses.
	if m := mustAllocate(t, p, "n0.example"); m.V4 != first[0].V4 {
		t.Errorf("n0 moved from %v to %v", first[0].V4, m.V4)
	}
	// Hold n1 (a live connection); let everything go idle.
	_, release, ok := p.Acquire(first[1].V4)
	if !ok {
		t.Fatal("Acquire(n1) failed")
	}
	clk.advance(2 * time.Minute)
	// n1 is held and n0 was used last: the least recently used free one is n2.
	m := mustAllocate(t, p, "new1.example")
	if m.V4 != first[2].V4 {
		t.Errorf("recycled %v, want n2's %v (least recently used, not held)", m.V4, first[2].V4)
	}
	if _, _, ok := p.Lookup(first[2].V4); !ok {
		t.Error("recycled address lost its new mapping")
	}
	if name, _, _ := p.Lookup(first[2].V4); name != "new1.example" {
		t.Errorf("recycled address maps to %q, want new1.example", name)
	}
	// Recycle everything recyclable: n3, n4, then n0; n1 stays held.
	for i := 2; i <= 4; i++ {
		mustAllocate(t, p, fmt.Sprintf("new%d.example", i))
	}
	if name, _, ok := p.Lookup(first[1].V4); !ok || name != "n1.example" {
		t.Errorf("held mapping was recycled: Lookup = %q %v", name, ok)
	}
	if _, err := p.Allocate("new5.example"); !errors.Is(err, ErrExhausted) {
		t.Errorf("Allocate with only fresh and held mappings = %v, want ErrExhausted", err)
	}
	// Releasing n1 makes it recyclable only after MinIdle.
	release()
	release() // a second call is a no-op
	if st := p.Stats(); st.Held != 0 {
		t.Errorf("Held after release = %d", st.Held)
	}
	if _, err := p.Allocate("new5.example"); !errors.Is(err, ErrExhausted) {
		t.Errorf("Allocate right after release = %v, want ErrExhausted (MinIdle)", err)
	}
	clk.advance(2 * time.Minute)
	if m := mustAllocate(t, p, "new5.example"); m.V4 != first[2].V4 {
		// new1 (on n2's index) is now the least recently used.
		t.Errorf("after idling, recycled %v, want %v", m.V4, first[2].V4)
	}
	if st := p.Stats(); st.Recycled != 5 || st.Exhausted != 3 {
		t.Errorf("final Stats = %+v, want 5 recycled and 3 exhausted", st)
	}
}

func TestReservedNeverRecycled(t *testing.T) {
	p, clk := smallPool(t)
	hostsAddr := netip.MustParseAddr("203.0.113.7")
	mustAllocate(t, p, "h.example") // first seen through DNS, then reserved
	r, err := p.Reserve("h.example", []netip.Addr{hostsAddr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reserve("h.example", []netip.Addr{hostsAddr, netip.MustParseAddr("2001:db8::7")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		mustAllocate(t, p, fmt.Sprintf("n%d.example", i))
	}
	for i := 0; i < 20; i++ {
		clk.advance(time.Hour)
		mustAllocate(t, p, fmt.Sprintf("flood%d.example", i))
	}
	name, hosts, ok := p.Lookup(r.V6)
	if !ok || name != "h.example" || len(hosts) != 2 || hosts[0] != hostsAddr {
		t.Fatalf("reserved mapping = %q %v %v, want h.example [203.0.113.7 2001:db8::7]", name, hosts, ok)
	}
	hosts[0] = netip.Addr{} // the caller's copy
	if _, h, _ := p.Lookup(r.V4); h[0] != hostsAddr {
		t.Error("Lookup returned the pool's own slice")
	}
	if st := p.Stats(); st.Reserved != 1 {
		t.Errorf("Stats().Reserved = %d, want 1", st.Reserved)
	}
}

func TestReserveExhausted(t *testing.T) {
	p, err := New(Config{V4: netip.MustParsePrefix("198.18.0.0/30")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reserve("a.example", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reserve("b.example", nil); !errors.Is(err, ErrExhausted) {
		t.Errorf("second Reserve in a /30 = %v, want ErrExhausted", err)
	}
	if v4, v6 := p.SelfAddrs(); v4 != netip.MustParseAddr("198.18.0.1") || v6.IsValid() {
		t.Errorf("SelfAddrs without IPv6 = %v %v", v4, v6)
	}
	if m := mustAllocate(t, p, "a.example"); m.V6.IsValid() {
		t.Errorf("a pool without IPv6 gave %v", m.V6)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	bad := []Config{
		{},
		{V4: netip.MustParsePrefix("198.18.0.0/31")},
		{V4: netip.MustParsePrefix("198.18.0.1/24")},
		{V4: netip.MustParsePrefix("2001:db8::/64")},
		{V4: netip.MustParsePrefix("198.18.0.0/24"), V6: netip.MustParsePrefix("198.19.0.0/16")},
		{V4: netip.MustParsePrefix("198.18.0.0/15"), V6: netip.MustParsePrefix("fd00::/112")},
		{V4: netip.MustParsePrefix("198.18.0.0/24"), V6: netip.MustParsePrefix("::ffff:0:0/96")},
		{V4: netip.MustParsePrefix("198.18.0.0/24"), Max: -1},
	}
	for _, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
	if _, err := New(Config{V4: netip.MustParsePrefix("198.18.0.0/24"), V6: netip.MustParsePrefix("fd00::/120")}); err != nil {
		t.Errorf("a /120 for a /24: %v", err)
	}
}

func TestMaxCapsTheRange(t *testing.T) {
	p, err := New(Config{V4: V4Range, Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		mustAllocate(t, p, fmt.Sprintf("n%d.example", i))
	}
	if _, err := p.Allocate("n3.example"); !errors.Is(err, ErrExhausted) {
		t.Errorf("Allocate beyond Max = %v, want ErrExhausted", err)
	}
	if p.Contains(netip.MustParseAddr("198.19.255.255")) != true {
		t.Error("Contains must cover the whole configured range, not only the indexes in use")
	}
}

func TestV4SlotAndRandomULA(t *testing.T) {
	seen := map[netip.Prefix]bool{}
	for i := 0; i < V4Slots; i++ {
		s, err := V4Slot(i)
		if err != nil {
			t.Fatal(err)
		}
		if s.Bits() != V4SlotBits || !V4Range.Contains(s.Addr()) || s.Masked() != s || seen[s] {
			t.Errorf("V4Slot(%d) = %v", i, s)
		}
		seen[s] = true
	}
	if last, _ := V4Slot(V4Slots - 1); last != netip.MustParsePrefix("198.19.240.0/20") {
		t.Errorf("last slot = %v, want 198.19.240.0/20", last)
	}
	for _, i := range []int{-1, V4Slots} {
		if _, err := V4Slot(i); err == nil {
			t.Errorf("V4Slot(%d) succeeded", i)
		}
	}
	a, err := RandomULA()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomULA()
	if a.Bits() != 64 || a.Addr().As16()[0] != 0xfd || a == b {
		t.Errorf("RandomULA = %v, %v", a, b)
	}
	p, err := NewRun()
	if err != nil {
		t.Fatal(err)
	}
	m := mustAllocate(t, p, "x.example")
	v4, v6 := p.Prefixes()
	if v4 != V4Range || !v6.Contains(m.V6) || !V4Range.Contains(m.V4) {
		t.Errorf("NewRun mapping %+v outside %v %v", m, v4, v6)
	}
}

func TestConcurrentUse(t *testing.T) {
	p, err := New(Config{V4: netip.MustParsePrefix("198.18.0.0/22"), V6: netip.MustParsePrefix("fd00:1::/64")})
	if err != nil {
		t.Fatal(err)
	}
	const workers, names = 8, 200
	got := make([][]Mapping, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < names; i++ {
				m, err := p.Allocate(fmt.Sprintf("n%d.example", i))
				if err != nil {
					t.Error(err)
					return
				}
				_, release, ok := p.Acquire(m.V4)
				if !ok {
					t.Errorf("Acquire(%v) failed", m.V4)
				}
				release()
				got[w] = append(got[w], m)
			}
		}()
	}
	wg.Wait()
	for w := 1; w < workers; w++ {
		for i := range got[w] {
			if got[w][i].V4 != got[0][i].V4 || got[w][i].V6 != got[0][i].V6 {
				t.Fatalf("name %d got %v and %v", i, got[0][i].V4, got[w][i].V4)
			}
		}
	}
	if st := p.Stats(); st.Mappings != names || st.Held != 0 {
		t.Errorf("Stats = %+v, want %d mappings, none held", st, names)
	}
}
