package dnsstub

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/sandgate/sandgate/synthaddr"
)

var udpFrom = source{transport: "udp", client: "127.0.0.1:5353"}

// ask sends a query through respond over "udp" and parses the reply.
func (s *stub) ask(t *testing.T, name string, typ dnsmessage.Type, o queryOpts) parsed {
	t.Helper()
	resp := s.respond(makeQuery(t, name, typ, o), true, udpFrom)
	if resp == nil {
		t.Fatalf("%s %v: no reply", name, typ)
	}
	p := parseReply(t, resp)
	id := o.id
	if id == 0 {
		id = 0x1234
	}
	if p.msg.ID != id || !p.msg.Response || !p.msg.RecursionAvailable || !p.msg.RecursionDesired {
		t.Errorf("%s %v: reply header %+v", name, typ, p.msg.Header)
	}
	return p
}

func TestAllowedNamesGetSyntheticAddresses(t *testing.T) {
	s := newStub(t, nil)
	m, err := s.pool.Allocate("allowed.example")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		typ  dnsmessage.Type
		want []netip.Addr
	}{
		{"allowed.example.", dnsmessage.TypeA, []netip.Addr{m.V4}},
		{"allowed.example.", dnsmessage.TypeAAAA, []netip.Addr{m.V6}},
		{"allowed.example.", dnsmessage.TypeALL, []netip.Addr{m.V4, m.V6}},
		{"AlLoWeD.ExAmPlE.", dnsmessage.TypeA, []netip.Addr{m.V4}}, // 0x20 case randomisation
		{"localhost.", dnsmessage.TypeA, []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		{"x.localhost.", dnsmessage.TypeAAAA, []netip.Addr{netip.IPv6Loopback()}},
	}
	for _, c := range cases {
		p := s.ask(t, c.name, c.typ, queryOpts{})
		if p.msg.RCode != dnsmessage.RCodeSuccess || !slices.Equal(p.a, c.want) {
			t.Errorf("%s %v = %v %v, want %v", c.name, c.typ, p.msg.RCode, p.a, c.want)
		}
		if len(p.msg.Questions) != 1 || p.msg.Questions[0].Name.String() != c.name {
			t.Errorf("%s: question not echoed as asked: %v", c.name, p.msg.Questions)
		}
		for _, rr := range p.msg.Answers {
			if rr.Header.TTL != uint32(DefaultTTL/time.Second) || rr.Header.Name.String() != c.name {
				t.Errorf("%s: answer header %+v", c.name, rr.Header)
			}
		}
	}
	// A wildcard name gets its own address, and the same one again.
	a := s.ask(t, "a.wild.example.", dnsmessage.TypeA, queryOpts{})
	b := s.ask(t, "b.wild.example.", dnsmessage.TypeA, queryOpts{})
	a2 := s.ask(t, "a.wild.example.", dnsmessage.TypeA, queryOpts{})
	if len(a.a) != 1 || len(b.a) != 1 || a.a[0] == b.a[0] || a2.a[0] != a.a[0] {
		t.Errorf("wildcard answers %v %v %v", a.a, b.a, a2.a)
	}
	if name, _, ok := s.pool.Lookup(b.a[0]); !ok || name != "b.wild.example" {
		t.Errorf("pool maps %v to %q %v", b.a[0], name, ok)
	}
	if got := s.rec.all(); len(got) != 0 {
		t.Errorf("refusals reported for answered queries: %+v", got)
	}
	if st := s.Stats(); st.Answered != 9 || st.Refused != 0 || st.Queries != 9 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestRefusalsAreReportedWithoutAllocation(t *testing.T) {
	s := newStub(t, nil)
	cases := []struct {
		name   string
		typ    dnsmessage.Type
		class  dnsmessage.Class
		rcode  dnsmessage.RCode
		reason string
	}{
		{"evil.example.", dnsmessage.TypeA, 0, dnsmessage.RCodeNameError, "not-allowed"},
		{"deny.example.", dnsmessage.TypeAAAA, 0, dnsmessage.RCodeNameError, "denied"},
		{"evil.example.", dnsmessage.TypeTXT, 0, dnsmessage.RCodeNameError, "not-allowed"},
		{"allowed.example.", dnsmessage.TypeTXT, 0, dnsmessage.RCodeRefused, ReasonTypeNotServed},
		{"allowed.example.", dnsmessage.TypeMX, 0, dnsmessage.RCodeRefused, ReasonTypeNotServed},
		{"_sip._tcp.allowed.example.", dnsmessage.TypeSRV, 0, dnsmessage.RCodeNameError, "not-allowed"},
		{"allowed.example.", dnsmessage.TypeCNAME, 0, dnsmessage.RCodeRefused, ReasonTypeNotServed},
		{"allowed.example.", dnsmessage.TypePTR, 0, dnsmessage.RCodeRefused, ReasonTypeNotServed},
		{"localhost.", dnsmessage.TypeTXT, 0, dnsmessage.RCodeRefused, ReasonTypeNotServed},
		{"allowed.example.", dnsmessage.TypeA, dnsmessage.ClassCHAOS, dnsmessage.RCodeRefused, ReasonClassNotServed},
		{"version.bind.", dnsmessage.TypeTXT, dnsmessage.ClassCHAOS, dnsmessage.RCodeRefused, ReasonClassNotServed},
		{"127.1.", dnsmessage.TypeA, 0, dnsmessage.RCodeNameError, "numeric-name"},
		{"2130706433.", dnsmessage.TypeA, 0, dnsmessage.RCodeNameError, "numeric-name"},
		{"b\xc3\xbccher.example.", dnsmessage.TypeA, 0, dnsmessage.RCodeNameError, "invalid-host"},
		{"sp ace.example.", dnsmessage.TypeA, 0, dnsmessage.RCodeNameError, "invalid-host"},
		{"-lead.example.", dnsmessage.TypeA, 0, dnsmessage.RCodeNameError, "invalid-host"},
		{".", dnsmessage.TypeNS, 0, dnsmessage.RCodeNameError, "invalid-host"},
		{"9.9.9.9.in-addr.arpa.", dnsmessage.TypePTR, 0, dnsmessage.RCodeNameError, ReasonReverseUnknown},
		{"1.7.18.198.in-addr.arpa.", dnsmessage.TypePTR, 0, dnsmessage.RCodeNameError, ReasonReverseUnknown}, // in range, not allocated
		{"7.18.198.in-addr.arpa.", dnsmessage.TypePTR, 0, dnsmessage.RCodeNameError, "not-allowed"},          // not a full reverse name
	}
	for i, c := range cases {
		p := s.ask(t, c.name, c.typ, queryOpts{class: c.class})
		if p.msg.RCode != c.rcode || len(p.msg.Answers) != 0 {
			t.Errorf("%s %v: %v with %d answers, want %v and none", c.name, c.typ, p.msg.RCode, len(p.msg.Answers), c.rcode)
		}
		got := s.rec.all()
		if len(got) != i+1 {
			t.Fatalf("%s %v: %d refusals reported, want %d", c.name, c.typ, len(got), i+1)
		}
		r := got[i]
		if r.Reason != c.reason || r.RCode != rcodeName(c.rcode) || r.Transport != "udp" || r.Client != udpFrom.client || r.Type != typeName(c.typ) {
			t.Errorf("%s %v: refusal %+v, want reason %q", c.name, c.typ, r, c.reason)
		}
	}
	if st := s.pool.Stats(); st.Mappings != 0 {
		t.Errorf("refused queries allocated %d synthetic addresses", st.Mappings)
	}
	if got := s.rec.all()[0]; got.Name != "evil.example" || got.Type != "A" {
		t.Errorf("first refusal names %q %q", got.Name, got.Type)
	}
}

func TestHTTPSAndSVCBAreNoData(t *testing.T) {
	s := newStub(t, nil)
	for _, typ := range []dnsmessage.Type{dnsmessage.TypeHTTPS, dnsmessage.TypeSVCB} {
		p := s.ask(t, "allowed.example.", typ, queryOpts{})
		if p.msg.RCode != dnsmessage.RCodeSuccess || len(p.msg.Answers) != 0 {
			t.Errorf("%v: %v with %d answers, want NODATA", typ, p.msg.RCode, len(p.msg.Answers))
		}
		if p := s.ask(t, "evil.example.", typ, queryOpts{}); p.msg.RCode != dnsmessage.RCodeNameError {
			t.Errorf("%v for a refused name: %v, want NXDOMAIN", typ, p.msg.RCode)
		}
	}
	if got := s.rec.all(); len(got) != 2 || got[0].Reason != "not-allowed" {
		t.Errorf("refusals = %+v, want only the two refused names", got)
	}
	if st := s.pool.Stats(); st.Mappings != 0 {
		t.Errorf("NODATA answers allocated %d addresses", st.Mappings)
	}
}

func TestReverseLookups(t *testing.T) {
	s := newStub(t, nil)
	m, err := s.pool.Allocate("db.example")
	if err != nil {
		t.Fatal(err)
	}
	v4rev, err := dnsmessage.NewName(reverseName(m.V4))
	must(t, err)
	for _, c := range []struct {
		name, want string
	}{
		{v4rev.String(), "db.example."},
		{reverseName(m.V6), "db.example."},
		{"1.0.0.127.in-addr.arpa.", "localhost."},
		{reverseName(netip.IPv6Loopback()), "localhost."},
	} {
		p := s.ask(t, c.name, dnsmessage.TypePTR, queryOpts{})
		if p.msg.RCode != dnsmessage.RCodeSuccess || !slices.Equal(p.ptr, []string{c.want}) {
			t.Errorf("PTR %s = %v %v, want %s", c.name, p.msg.RCode, p.ptr, c.want)
		}
	}
}

// reverseName is the PTR name of a, with the trailing dot.
func reverseName(a netip.Addr) string {
	if a.Is4() {
		b := a.As4()
		return netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}).String() + ".in-addr.arpa."
	}
	const hex = "0123456789abcdef"
	b := a.As16()
	var out []byte
	for i := 15; i >= 0; i-- {
		out = append(out, hex[b[i]&0xf], '.', hex[b[i]>>4], '.')
	}
	return string(out) + "ip6.arpa."
}

func TestReverseAddrParsing(t *testing.T) {
	good := map[string]string{
		"4.3.2.1.in-addr.arpa":         "1.2.3.4",
		"0.0.0.0.in-addr.arpa":         "0.0.0.0",
		"255.255.255.255.in-addr.arpa": "255.255.255.255",
	}
	for in, want := range good {
		if a, ok := reverseAddr(in); !ok || a.String() != want {
			t.Errorf("reverseAddr(%q) = %v %v, want %s", in, a, ok, want)
		}
	}
	a := netip.MustParseAddr("2001:db8::abcd:1")
	if got, ok := reverseAddr(reverseName(a)[:len(reverseName(a))-1]); !ok || got != a {
		t.Errorf("reverseAddr(v6) = %v %v, want %v", got, ok, a)
	}
	for _, bad := range []string{"1.2.3.in-addr.arpa", "1.2.3.4.5.in-addr.arpa", "256.1.1.1.in-addr.arpa",
		"01.1.1.1.in-addr.arpa", "a.1.1.1.in-addr.arpa", "+1.1.1.1.in-addr.arpa", "1.0.ip6.arpa",
		"in-addr.arpa", "example.com", reverseName(a)[2:]} {
		if got, ok := reverseAddr(bad); ok {
			t.Errorf("reverseAddr(%q) = %v, want not a reverse name", bad, got)
		}
	}
}

func TestExhaustionIsServfailAndReported(t *testing.T) {
	pool, err := synthaddr.New(synthaddr.Config{V4: netip.MustParsePrefix("198.18.0.0/29"), Max: 2})
	must(t, err)
	s := newStub(t, func(c *Config) { c.Pool = pool })
	s.pool = pool
	for _, n := range []string{"a.wild.example.", "b.wild.example."} {
		if p := s.ask(t, n, dnsmessage.TypeA, queryOpts{}); len(p.a) != 1 {
			t.Fatalf("%s: %v", n, p.a)
		}
	}
	if p := s.ask(t, "a.wild.example.", dnsmessage.TypeAAAA, queryOpts{}); p.msg.RCode != dnsmessage.RCodeSuccess || len(p.a) != 0 {
		t.Errorf("AAAA without an IPv6 range = %v %v, want NODATA", p.msg.RCode, p.a)
	}
	p := s.ask(t, "c.wild.example.", dnsmessage.TypeA, queryOpts{})
	if p.msg.RCode != dnsmessage.RCodeServerFailure || len(p.a) != 0 {
		t.Errorf("third name in a pool of two = %v %v, want SERVFAIL", p.msg.RCode, p.a)
	}
	got := s.rec.all()
	if len(got) != 1 || got[0].Reason != ReasonExhausted || got[0].RCode != "SERVFAIL" || got[0].Name != "c.wild.example" {
		t.Errorf("refusals = %+v, want one %s", got, ReasonExhausted)
	}
}

func TestEDNS(t *testing.T) {
	s := newStub(t, nil)
	p := s.ask(t, "allowed.example.", dnsmessage.TypeA, queryOpts{edns: true})
	if p.opt == nil || p.opt.Header.Class != ednsPayload || len(p.a) != 1 {
		t.Fatalf("EDNS query: OPT %v, answers %v", p.opt, p.a)
	}
	if p := s.ask(t, "allowed.example.", dnsmessage.TypeA, queryOpts{}); p.opt != nil {
		t.Error("OPT sent to a client that did not use EDNS")
	}
	p = s.ask(t, "allowed.example.", dnsmessage.TypeA, queryOpts{edns: true, ednsVer: 1})
	if p.opt == nil || p.opt.Header.ExtendedRCode(p.msg.RCode) != rcodeBadVer || len(p.a) != 0 {
		t.Errorf("EDNS version 1: OPT %v, rcode %v, answers %v, want BADVERS", p.opt, p.msg.RCode, p.a)
	}
	p = s.ask(t, "allowed.example.", dnsmessage.TypeA, queryOpts{twoOPT: true})
	if p.msg.RCode != dnsmessage.RCodeFormatError {
		t.Errorf("two OPT records: %v, want FORMERR", p.msg.RCode)
	}
	got := s.rec.all()
	if len(got) != 2 || got[0].Reason != ReasonBadVersion || got[0].RCode != "BADVERS" || got[1].Reason != ReasonMalformed {
		t.Errorf("refusals = %+v", got)
	}
}

func TestTruncationToClientLimit(t *testing.T) {
	h := dnsmessage.Header{ID: 7, Response: true}
	q := dnsmessage.Question{Name: dnsmessage.MustNewName("allowed.example."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	var answers []dnsmessage.Resource
	for i := 0; i < 60; i++ { // 60 × 16 bytes: over 512, under 1232
		answers = append(answers, dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5},
			Body:   &dnsmessage.AResource{A: [4]byte{198, 18, 0, byte(i)}},
		})
	}
	for _, c := range []struct {
		udp       bool
		ext       edns
		truncated bool
	}{
		{true, edns{}, true},
		{true, edns{present: true, payload: 512}, true},
		{true, edns{present: true, payload: 4096}, false},
		{false, edns{}, false},
	} {
		msg := pack(h, &q, answers, c.ext, c.udp)
		p := parseReply(t, msg)
		if p.msg.Truncated != c.truncated || (c.truncated && (len(p.a) != 0 || len(msg) > 512)) || (!c.truncated && len(p.a) != 60) {
			t.Errorf("%+v: TC=%v, %d answers, %d bytes", c, p.msg.Truncated, len(p.a), len(msg))
		}
		if len(p.msg.Questions) != 1 {
			t.Errorf("%+v: question dropped", c)
		}
	}
}

func TestMalformedQueries(t *testing.T) {
	s := newStub(t, nil)
	good := makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{})
	loop := append([]byte(nil), good[:12]...)
	loop = append(loop, 0xc0, 12, 0, 1, 0, 1) // a name that points at itself
	fwd := append([]byte(nil), good[:12]...)
	fwd = append(fwd, 0xc0, 20, 0, 1, 0, 1, 0, 0, 3, 'a', 'b', 'c', 0xc0, 12)
	withCount := func(b []byte, off int, n uint16) []byte {
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint16(b[off:], n)
		return b
	}
	reserved := append(append([]byte(nil), good[:12]...), 0x80, 0, 0, 1, 0, 1)
	formerr := map[string][]byte{
		"no question":           makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{noQuest: true}),
		"two questions":         makeQuery(t, "allowed.example.", dnsmessage.TypeA, queryOpts{twoQuest: true}),
		"compression loop":      loop,
		"pointer chain":         fwd,
		"reserved label bits":   reserved,
		"truncated question":    good[:len(good)-3],
		"header only":           good[:12],
		"answer count, no data": withCount(good, 6, 1),
		"many questions":        withCount(good, 4, 65535),
		"oversized":             append(append([]byte(nil), good...), make([]byte, maxQuery)...),
		"additional garbage":    append(withCount(good, 10, 1), 0, 0, 41),
	}
	for name, msg := range formerr {
		resp := s.respond(msg, true, udpFrom)
		if resp == nil {
			t.Errorf("%s: no reply, want FORMERR", name)
			continue
		}
		p := parseReply(t, resp)
		if p.msg.RCode != dnsmessage.RCodeFormatError || p.msg.ID != 0x1234 || len(p.msg.Answers) != 0 {
			t.Errorf("%s: %v id %x, want FORMERR", name, p.msg.RCode, p.msg.ID)
		}
	}
	query := withCount(good, 2, 0x8000) // the response bit
	for name, msg := range map[string][]byte{"empty": nil, "short": good[:11], "response": query} {
		if resp := s.respond(msg, true, udpFrom); resp != nil {
			t.Errorf("%s: replied %x, want silence", name, resp)
		}
	}
	notify := makeQuery(t, "allowed.example.", dnsmessage.TypeSOA, queryOpts{opcode: 4})
	if p := parseReply(t, s.respond(notify, true, udpFrom)); p.msg.RCode != dnsmessage.RCodeNotImplemented {
		t.Errorf("NOTIFY: %v, want NOTIMP", p.msg.RCode)
	}
	got := s.rec.all()
	if len(got) != len(formerr)+4 {
		t.Errorf("%d refusals reported, want %d", len(got), len(formerr)+4)
	}
	for _, r := range got[:len(got)-1] {
		if r.Reason != ReasonMalformed {
			t.Errorf("refusal %+v, want %s", r, ReasonMalformed)
		}
	}
	if r := got[len(got)-1]; r.Reason != ReasonOpcodeNotServed || r.RCode != "NOTIMP" {
		t.Errorf("NOTIFY refusal %+v", r)
	}
	if len(s.pol.asked) != 0 {
		t.Errorf("malformed queries reached the policy: %v", s.pol.asked)
	}
}

func TestNewValidates(t *testing.T) {
	pool, err := synthaddr.NewRun()
	must(t, err)
	for _, c := range []Config{
		{Pool: pool},
		{Policy: defaultPolicy()},
		{Policy: defaultPolicy(), Pool: pool, TTL: -1},
		{Policy: defaultPolicy(), Pool: pool, MaxTCPConns: -1},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
	s, err := New(Config{Policy: PolicyFunc(func(string) (bool, string) { return true, "" }), Pool: pool, TTL: 100 * time.Millisecond})
	must(t, err)
	if s.ttl != 1 {
		t.Errorf("TTL under a second became %d, want 1", s.ttl)
	}
}
