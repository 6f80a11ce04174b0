package dnsstub

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/sandgate/sandgate/synthaddr"
)

const sampleHosts = "# The host's hosts file\n" +
	"127.0.0.1\tlocalhost\n" +
	"127.0.1.1\tworkstation.lan workstation\n" +
	"::1     localhost ip6-localhost ip6-loopback # loopback\n" +
	"ff02::1 ip6-allnodes\n" +
	"203.0.113.10  db.example  alias.example   # the database\n" +
	"198.51.100.20 evil.example\n" +
	"2001:db8::20  db.example\n" +
	"2001:db8::30  v6only.example\n" +
	"0.0.0.0 ads.wild.example\n" +
	"fe80::1%eth0 allowed.example\n" +
	"not-an-address allowed.example\n" +
	"203.0.113.11\r\n" +
	"203.0.113.12 DB.Example bad..name 127.1\r\n" +
	"203.0.113.13 x.localhost\n" +
	"\n   \n#\n"

func TestParseHosts(t *testing.T) {
	got := ParseHosts([]byte(sampleHosts))
	want := []HostsEntry{
		{netip.MustParseAddr("127.0.0.1"), []string{"localhost"}},
		{netip.MustParseAddr("127.0.1.1"), []string{"workstation.lan", "workstation"}},
		{netip.MustParseAddr("::1"), []string{"localhost", "ip6-localhost", "ip6-loopback"}},
		{netip.MustParseAddr("ff02::1"), []string{"ip6-allnodes"}},
		{netip.MustParseAddr("203.0.113.10"), []string{"db.example", "alias.example"}},
		{netip.MustParseAddr("198.51.100.20"), []string{"evil.example"}},
		{netip.MustParseAddr("2001:db8::20"), []string{"db.example"}},
		{netip.MustParseAddr("2001:db8::30"), []string{"v6only.example"}},
		{netip.MustParseAddr("0.0.0.0"), []string{"ads.wild.example"}},
		{netip.MustParseAddr("203.0.113.12"), []string{"DB.Example", "bad..name", "127.1"}},
		{netip.MustParseAddr("203.0.113.13"), []string{"x.localhost"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseHosts =\n%v\nwant\n%v", got, want)
	}
	if got := ParseHosts(nil); len(got) != 0 {
		t.Errorf("ParseHosts(nil) = %v", got)
	}
}

func TestHostsView(t *testing.T) {
	s := newStub(t, nil)
	view, err := HostsView([]byte(sampleHosts), s.pol, s.pool)
	must(t, err)
	db, _ := s.pool.Allocate("db.example")
	alias, _ := s.pool.Allocate("alias.example")
	v6only, _ := s.pool.Allocate("v6only.example")
	wantLines := []string{
		"127.0.0.1 localhost",
		"127.0.1.1 workstation.lan workstation",
		"::1 localhost ip6-localhost ip6-loopback",
		"0.0.0.0 ads.wild.example",
		db.V4.String() + " db.example",
		db.V6.String() + " db.example",
		alias.V4.String() + " alias.example",
		v6only.V6.String() + " v6only.example",
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(string(view), "\n"), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if !slices.Equal(lines, wantLines) {
		t.Errorf("hosts view:\n%s\nwant lines\n%s", view, strings.Join(wantLines, "\n"))
	}
	for _, bad := range []string{"evil", "ip6-allnodes", "allowed.example", "x.localhost", "203.0.113", "2001:db8", "198.51.100"} {
		if strings.Contains(string(view), bad) {
			t.Errorf("hosts view mentions %q:\n%s", bad, view)
		}
	}
	// The TCP side learns the hosts-file addresses, in file order.
	name, hosts, ok := s.pool.Lookup(db.V6)
	want := []netip.Addr{netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8::20"), netip.MustParseAddr("203.0.113.12")}
	if !ok || name != "db.example" || !slices.Equal(hosts, want) {
		t.Errorf("Lookup(%v) = %q %v %v, want db.example %v", db.V6, name, hosts, ok, want)
	}
	// A DNS query for a hosts-file name gives the same address.
	p := s.ask(t, "db.example.", dnsmessage.TypeA, queryOpts{})
	if !slices.Equal(p.a, []netip.Addr{db.V4}) {
		t.Errorf("DNS answer for a hosts name = %v, want %v", p.a, db.V4)
	}
	if st := s.pool.Stats(); st.Reserved != 3 {
		t.Errorf("%d names reserved, want 3", st.Reserved)
	}
	// The view parses back, and every name in it is allowed or loopback.
	for _, e := range ParseHosts(view) {
		if e.Addr.IsLoopback() || e.Addr.IsUnspecified() {
			continue
		}
		for _, n := range e.Names {
			if ok, _ := s.pol.Allowed(n); !ok || !s.pool.Contains(e.Addr) {
				t.Errorf("view line %v %v", e.Addr, e.Names)
			}
		}
	}
}

func TestHostsViewAddsLocalhostAndHandlesNoIPv6(t *testing.T) {
	pool, err := synthaddr.New(synthaddr.Config{V4: netip.MustParsePrefix("198.18.0.0/30")})
	must(t, err)
	view, err := HostsView([]byte("2001:db8::30 v6only.example\n"), defaultPolicy(), pool)
	must(t, err)
	m, _ := pool.Allocate("v6only.example")
	want := "127.0.0.1 localhost\n::1 localhost\n"
	if !strings.Contains(string(view), m.V4.String()+" v6only.example\n") || !strings.HasSuffix(string(view), want) {
		t.Errorf("view without an IPv6 range:\n%s", view)
	}
	_, err = HostsView([]byte("203.0.113.1 a.wild.example b.wild.example c.wild.example\n"), defaultPolicy(), pool)
	if !errors.Is(err, synthaddr.ErrExhausted) {
		t.Errorf("hosts view beyond the range = %v, want ErrExhausted", err)
	}
}

func TestResolvConf(t *testing.T) {
	got := string(ResolvConf(netip.MustParseAddr("127.0.0.1")))
	for _, line := range []string{"nameserver 127.0.0.1\n", "search .\n"} {
		if !strings.Contains(got, line) {
			t.Errorf("resolv.conf lacks %q:\n%s", line, got)
		}
	}
	if strings.Count(got, "nameserver") != 1 || strings.Contains(got, "domain") {
		t.Errorf("resolv.conf:\n%s", got)
	}
}
