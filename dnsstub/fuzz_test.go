package dnsstub

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzRespond feeds arbitrary messages to the packet handler: it must not
// panic; a reply must parse, carry the query's ID, have the response bit,
// fit the UDP limit, and hold synthetic or loopback addresses only; and a
// name the policy refuses must never get an address.
func FuzzRespond(f *testing.F) {
	seed := func(name string, typ dnsmessage.Type, o queryOpts) {
		f.Add(makeQuery(f, name, typ, o), true)
	}
	seed("allowed.example.", dnsmessage.TypeA, queryOpts{})
	seed("AlLoWeD.example.", dnsmessage.TypeAAAA, queryOpts{edns: true})
	seed("evil.example.", dnsmessage.TypeA, queryOpts{})
	seed("x.wild.example.", dnsmessage.TypeALL, queryOpts{edns: true, payload: 4096})
	seed("allowed.example.", dnsmessage.TypeHTTPS, queryOpts{})
	seed("allowed.example.", dnsmessage.TypeTXT, queryOpts{twoOPT: true})
	seed("1.0.0.127.in-addr.arpa.", dnsmessage.TypePTR, queryOpts{})
	seed("allowed.example.", dnsmessage.TypeA, queryOpts{twoQuest: true})
	seed("allowed.example.", dnsmessage.TypeA, queryOpts{class: dnsmessage.ClassCHAOS, ednsVer: 3, edns: true})
	good := makeQuery(f, "allowed.example.", dnsmessage.TypeA, queryOpts{})
	f.Add(append(append([]byte(nil), good[:12]...), 0xc0, 12, 0, 1, 0, 1), false)
	f.Add(good[:13], false)
	f.Add([]byte{}, true)

	f.Fuzz(func(t *testing.T, msg []byte, udp bool) {
		s := newStub(t, nil)
		resp := s.respond(msg, udp, udpFrom)
		if resp == nil {
			return
		}
		if len(msg) < 12 {
			t.Fatalf("replied to a %d-byte message", len(msg))
		}
		if udp && len(resp) > ednsPayload {
			t.Fatalf("UDP reply of %d bytes", len(resp))
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if m.ID != binary.BigEndian.Uint16(msg) || !m.Response {
			t.Fatalf("reply header %+v", m.Header)
		}
		for _, rr := range m.Answers {
			var a netip.Addr
			switch body := rr.Body.(type) {
			case *dnsmessage.AResource:
				a = netip.AddrFrom4(body.A)
			case *dnsmessage.AAAAResource:
				a = netip.AddrFrom16(body.AAAA)
			case *dnsmessage.PTRResource:
				continue
			default:
				t.Fatalf("unexpected answer %v", rr)
			}
			if !s.pool.Contains(a) && !a.IsLoopback() {
				t.Fatalf("answer %v is neither synthetic nor loopback", a)
			}
			name := strings.TrimSuffix(strings.ToLower(rr.Header.Name.String()), ".")
			if ok, _ := s.pol.Allowed(name); !ok && name != "localhost" && !strings.HasSuffix(name, ".localhost") {
				t.Fatalf("refused name %q got %v", name, a)
			}
		}
	})
}

// FuzzHostsView feeds arbitrary hosts files to ParseHosts and HostsView:
// no panic, every entry has an address without a zone and at least one
// name without white space, and every line of the view that is not
// loopback names only allowed names on synthetic addresses.
func FuzzHostsView(f *testing.F) {
	f.Add([]byte(sampleHosts))
	f.Add([]byte("203.0.113.1 db.example\n2001:db8::1 db.example alias.example"))
	f.Add([]byte("::ffff:127.0.0.1 allowed.example\n::ffff:203.0.113.9 allowed.example\n"))
	f.Add([]byte("# only\n#comments\n\x00\xff 1.2.3.4"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, e := range ParseHosts(data) {
			if !e.Addr.IsValid() || e.Addr.Zone() != "" || len(e.Names) == 0 {
				t.Fatalf("entry %+v", e)
			}
			for _, n := range e.Names {
				if n == "" || strings.ContainsAny(n, " \t\r\n#") {
					t.Fatalf("name %q", n)
				}
			}
		}
		s := newStub(t, nil)
		view, err := HostsView(data, s.pol, s.pool)
		if err != nil {
			return // the /24 filled up
		}
		for _, e := range ParseHosts(view) {
			if a := e.Addr.Unmap(); a.IsLoopback() || a.IsUnspecified() {
				continue
			}
			if !s.pool.Contains(e.Addr) || len(e.Names) != 1 {
				t.Fatalf("view line %v %v", e.Addr, e.Names)
			}
			name, hosts, ok := s.pool.Lookup(e.Addr)
			if ok2, _ := s.pol.Allowed(e.Names[0]); !ok2 || !ok || name != e.Names[0] || len(hosts) == 0 {
				t.Fatalf("view line %v %v maps to %q %v %v", e.Addr, e.Names, name, hosts, ok)
			}
		}
	})
}
