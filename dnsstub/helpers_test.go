package dnsstub

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/sandgate/sandgate/synthaddr"
)

// testPolicy allows the names in allow and every name under a suffix in
// allowSuffix, and records every name it is asked about.
type testPolicy struct {
	allow       map[string]bool
	allowSuffix []string

	mu    sync.Mutex
	asked []string
}

func (p *testPolicy) Allowed(name string) (bool, string) {
	p.mu.Lock()
	p.asked = append(p.asked, name)
	p.mu.Unlock()
	if p.allow[name] {
		return true, "allowed"
	}
	for _, s := range p.allowSuffix {
		if strings.HasSuffix(name, s) {
			return true, "allowed"
		}
	}
	if strings.HasPrefix(name, "deny.") {
		return false, "denied"
	}
	return false, "not-allowed"
}

func defaultPolicy() *testPolicy {
	return &testPolicy{
		allow:       map[string]bool{"allowed.example": true, "db.example": true, "v6only.example": true, "alias.example": true},
		allowSuffix: []string{".wild.example"},
	}
}

// recorder collects refusals.
type recorder struct {
	mu   sync.Mutex
	list []Refusal
}

func (r *recorder) report(x Refusal) {
	r.mu.Lock()
	r.list = append(r.list, x)
	r.mu.Unlock()
}

func (r *recorder) all() []Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Refusal(nil), r.list...)
}

// stub is a Server with its pool, policy and refusal log.
type stub struct {
	*Server
	pool *synthaddr.Pool
	pol  *testPolicy
	rec  *recorder
}

// newStub makes a Server on a /24 and a /64; mod may change the Config.
func newStub(t testing.TB, mod func(*Config)) *stub {
	t.Helper()
	pool, err := synthaddr.New(synthaddr.Config{
		V4: netip.MustParsePrefix("198.18.7.0/24"),
		V6: netip.MustParsePrefix("fd5a:6e64:6761:7465::/64"),
	})
	if err != nil {
		t.Fatal(err)
	}
	st := &stub{pool: pool, pol: defaultPolicy(), rec: &recorder{}}
	cfg := Config{Policy: st.pol, Pool: pool, Report: st.rec.report}
	if mod != nil {
		mod(&cfg)
	}
	st.Server, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// queryOpts changes a test query.
type queryOpts struct {
	id       uint16
	class    dnsmessage.Class
	opcode   dnsmessage.OpCode
	edns     bool
	ednsVer  uint8
	payload  int
	twoOPT   bool
	twoQuest bool
	noQuest  bool
}

// makeQuery packs a query for name and t.
func makeQuery(t testing.TB, name string, typ dnsmessage.Type, o queryOpts) []byte {
	t.Helper()
	if o.id == 0 {
		o.id = 0x1234
	}
	if o.class == 0 {
		o.class = dnsmessage.ClassINET
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: o.id, OpCode: o.opcode, RecursionDesired: true})
	b.EnableCompression()
	must(t, b.StartQuestions())
	q := dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: o.class}
	if !o.noQuest {
		must(t, b.Question(q))
	}
	if o.twoQuest {
		must(t, b.Question(q))
	}
	if o.edns || o.twoOPT {
		must(t, b.StartAdditionals())
		for i := 0; i < 1+boolInt(o.twoOPT); i++ {
			var h dnsmessage.ResourceHeader
			payload := o.payload
			if payload == 0 {
				payload = 1232
			}
			must(t, h.SetEDNS0(payload, 0, false))
			h.TTL |= uint32(o.ednsVer) << 16
			must(t, b.OPTResource(h, dnsmessage.OPTResource{}))
		}
	}
	msg, err := b.Finish()
	must(t, err)
	return msg
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// parsed is a reply, unpacked.
type parsed struct {
	msg dnsmessage.Message
	a   []netip.Addr // A and AAAA answers, in order
	ptr []string
	opt *dnsmessage.Resource
}

func parseReply(t testing.TB, b []byte) parsed {
	t.Helper()
	var p parsed
	if err := p.msg.Unpack(b); err != nil {
		t.Fatalf("reply does not parse: %v (%x)", err, b)
	}
	for _, rr := range p.msg.Answers {
		switch body := rr.Body.(type) {
		case *dnsmessage.AResource:
			p.a = append(p.a, netip.AddrFrom4(body.A))
		case *dnsmessage.AAAAResource:
			p.a = append(p.a, netip.AddrFrom16(body.AAAA))
		case *dnsmessage.PTRResource:
			p.ptr = append(p.ptr, body.PTR.String())
		default:
			t.Errorf("unexpected answer %v", rr)
		}
	}
	for i := range p.msg.Additionals {
		if p.msg.Additionals[i].Header.Type == dnsmessage.TypeOPT {
			p.opt = &p.msg.Additionals[i]
		}
	}
	return p
}
