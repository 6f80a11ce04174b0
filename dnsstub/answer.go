package dnsstub

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/sandgate/sandgate/policy"
)

// EDNS(0) limits.
const (
	ednsPayload = 1232 // the payload size this server advertises and the most it sends over UDP
	plainUDPMax = 512  // the most it sends over UDP without EDNS
	tcpMax      = 65535
	rcodeBadVer = dnsmessage.RCode(16)
)

// source says where a query came from, for Refusal.
type source struct {
	transport string
	client    string
}

// edns is what a query's OPT record says.
type edns struct {
	present bool
	version uint8
	payload uint16
}

// reply is the outcome of one question, before it is packed.
type reply struct {
	rcode   dnsmessage.RCode
	answers []dnsmessage.Resource
}

// errTooManyQuestions is the parse error of a query with several questions.
var errTooManyQuestions = errors.New("more than one question")

// respond answers one query message. With udp set, the reply is cut to the
// client's UDP limit. A nil result means no reply.
func (s *Server) respond(msg []byte, udp bool, from source) []byte {
	s.stats.queries.Add(1)
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		s.report(refusal(from, nil, "", ReasonMalformed))
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if h.OpCode != 0 {
		rh.RCode = dnsmessage.RCodeNotImplemented
		s.report(refusal(from, nil, "NOTIMP", ReasonOpcodeNotServed))
		return pack(rh, nil, nil, edns{}, udp)
	}
	q, ext, err := parseQuery(&p, len(msg))
	if err != nil {
		rh.RCode = dnsmessage.RCodeFormatError
		var named *dnsmessage.Question // the question, when it was read before the error
		if q.Name.Length > 0 {
			named = &q
		}
		s.report(refusal(from, named, "FORMERR", ReasonMalformed))
		return pack(rh, nil, nil, ext, udp)
	}
	if ext.present && ext.version != 0 {
		rh.RCode = rcodeBadVer
		s.report(refusal(from, &q, "BADVERS", ReasonBadVersion))
		return pack(rh, &q, nil, ext, udp)
	}
	r, reason := s.decide(q)
	rh.RCode = r.rcode
	if reason != "" {
		s.report(refusal(from, &q, rcodeName(r.rcode), reason))
	} else {
		s.stats.answered.Add(1)
	}
	return pack(rh, &q, r.answers, ext, udp)
}

// parseQuery reads the one question and the OPT record of a query; the
// other sections must parse but are ignored.
func parseQuery(p *dnsmessage.Parser, size int) (dnsmessage.Question, edns, error) {
	var ext edns
	if size > maxQuery {
		return dnsmessage.Question{}, ext, errors.New("query too large")
	}
	q, err := p.Question()
	if err != nil {
		return q, ext, err
	}
	if _, err := p.Question(); !errors.Is(err, dnsmessage.ErrSectionDone) {
		return q, ext, errTooManyQuestions
	}
	if err := p.SkipAllAnswers(); err != nil {
		return q, ext, err
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return q, ext, err
	}
	for {
		rh, err := p.AdditionalHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return q, ext, nil
		}
		if err != nil {
			return q, ext, err
		}
		if rh.Type == dnsmessage.TypeOPT {
			if ext.present {
				return q, edns{}, errors.New("two OPT records")
			}
			ext = edns{present: true, version: uint8(rh.TTL >> 16), payload: uint16(rh.Class)}
		}
		if err := p.SkipAdditional(); err != nil {
			return q, ext, err
		}
	}
}

// decide answers one well-formed question. reason is "" for an answer and
// the Refusal reason otherwise.
func (s *Server) decide(q dnsmessage.Question) (reply, string) {
	if q.Class != dnsmessage.ClassINET {
		return reply{rcode: dnsmessage.RCodeRefused}, ReasonClassNotServed
	}
	name, reason := canonicalName(q.Name.String())
	if reason != "" {
		return reply{rcode: dnsmessage.RCodeNameError}, reason
	}
	if q.Type == dnsmessage.TypePTR {
		if ip, ok := reverseAddr(name); ok {
			return s.reverse(q, ip)
		}
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return s.addresses(q, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback())
	}
	if ok, why := s.cfg.Policy.Allowed(name); !ok {
		if why == "" {
			why = policy.ReasonNotAllowed
		}
		return reply{rcode: dnsmessage.RCodeNameError}, why
	}
	if q.Type != dnsmessage.TypeA && q.Type != dnsmessage.TypeAAAA && q.Type != dnsmessage.TypeALL {
		return s.addresses(q, netip.Addr{}, netip.Addr{}) // NODATA or refused: nothing to allocate
	}
	m, err := s.cfg.Pool.Allocate(name)
	if err != nil {
		return reply{rcode: dnsmessage.RCodeServerFailure}, ReasonExhausted
	}
	return s.addresses(q, m.V4, m.V6)
}

// addresses answers q for a name whose addresses are v4 and v6 (v6 may be
// invalid): A, AAAA and ANY get them, HTTPS and SVCB get NODATA, other
// types are refused.
func (s *Server) addresses(q dnsmessage.Question, v4, v6 netip.Addr) (reply, string) {
	var r reply
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: s.ttl}
	switch q.Type {
	case dnsmessage.TypeA, dnsmessage.TypeAAAA, dnsmessage.TypeALL:
	case dnsmessage.TypeHTTPS, dnsmessage.TypeSVCB:
		return r, ""
	default:
		return reply{rcode: dnsmessage.RCodeRefused}, ReasonTypeNotServed
	}
	if q.Type != dnsmessage.TypeAAAA {
		hdr.Type = dnsmessage.TypeA
		r.answers = append(r.answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AResource{A: v4.As4()}})
	}
	if q.Type != dnsmessage.TypeA && v6.IsValid() {
		hdr.Type = dnsmessage.TypeAAAA
		r.answers = append(r.answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AAAAResource{AAAA: v6.As16()}})
	}
	return r, ""
}

// reverse answers a PTR question for ip.
func (s *Server) reverse(q dnsmessage.Question, ip netip.Addr) (reply, string) {
	var target string
	if ip.Unmap().IsLoopback() {
		target = "localhost."
	} else if name, _, ok := s.cfg.Pool.Lookup(ip); ok {
		target = name + "."
	} else {
		return reply{rcode: dnsmessage.RCodeNameError}, ReasonReverseUnknown
	}
	ptr, err := dnsmessage.NewName(target)
	if err != nil {
		return reply{rcode: dnsmessage.RCodeServerFailure}, ReasonMalformed
	}
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET, TTL: s.ttl}
	return reply{answers: []dnsmessage.Resource{{Header: hdr, Body: &dnsmessage.PTRResource{PTR: ptr}}}}, ""
}

// pack builds the reply message. q may be nil (no question is echoed). A
// UDP reply larger than the client accepts is sent again without records and
// with TC set.
func pack(h dnsmessage.Header, q *dnsmessage.Question, answers []dnsmessage.Resource, ext edns, udp bool) []byte {
	limit := tcpMax
	if udp {
		limit = plainUDPMax
		if ext.present {
			limit = max(plainUDPMax, min(int(ext.payload), ednsPayload))
		}
	}
	msg, err := build(h, q, answers, ext)
	if err == nil && len(msg) <= limit {
		return msg
	}
	h.Truncated = err == nil
	if err != nil {
		h.RCode = dnsmessage.RCodeServerFailure
	}
	msg, err = build(h, q, nil, ext)
	if err != nil {
		return nil
	}
	return msg
}

// build packs one message.
func build(h dnsmessage.Header, q *dnsmessage.Question, answers []dnsmessage.Resource, ext edns) ([]byte, error) {
	ext4 := h.RCode
	h.RCode &= 0xf
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if q != nil {
		if err := b.Question(*q); err != nil {
			return nil, err
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, rr := range answers {
		var err error
		switch body := rr.Body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(rr.Header, *body)
		case *dnsmessage.AAAAResource:
			err = b.AAAAResource(rr.Header, *body)
		case *dnsmessage.PTRResource:
			err = b.PTRResource(rr.Header, *body)
		default:
			err = errors.New("unexpected record type")
		}
		if err != nil {
			return nil, err
		}
	}
	if ext.present {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		var opt dnsmessage.ResourceHeader
		if err := opt.SetEDNS0(ednsPayload, ext4, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(opt, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// canonicalName lower-cases a question name and removes its trailing dot;
// reason is non-empty when the result is not a valid host name in the
// policy's normal form.
func canonicalName(wire string) (string, string) {
	name := strings.TrimSuffix(strings.ToLower(wire), ".")
	n, err := policy.NormalizeName(name)
	switch {
	case errors.Is(err, policy.ErrNumericName):
		return name, policy.ReasonNumericName
	case err != nil || n != name:
		return name, policy.ReasonInvalidHost
	}
	return n, ""
}

// reverseAddr reads the address of a full reverse name
// ("4.3.2.1.in-addr.arpa", or 32 nibbles then "ip6.arpa").
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		var b [4]byte
		if reverseLabels(rest, b[:], 10, 8) {
			return netip.AddrFrom4(b), true
		}
	} else if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		var b [16]byte
		if reverseLabels(rest, b[:], 16, 4) {
			return netip.AddrFrom16(b), true
		}
	}
	return netip.Addr{}, false
}

// reverseLabels fills out (big-endian) from the dot-separated labels of
// rest, least significant first, each one number of bits bits written in
// base without leading zeros; it reports whether rest had that form.
func reverseLabels(rest string, out []byte, base, bits int) bool {
	labels := strings.Split(rest, ".")
	if len(labels)*bits != len(out)*8 {
		return false
	}
	for i, l := range labels {
		v, err := strconv.ParseUint(l, base, bits)
		if err != nil || (len(l) > 1 && l[0] == '0') {
			return false
		}
		bit := i * bits
		out[len(out)-1-bit/8] |= byte(v) << (bit % 8)
	}
	return true
}

// refusal makes a Refusal for question q (nil when none was read).
func refusal(from source, q *dnsmessage.Question, rcode, reason string) Refusal {
	r := Refusal{Transport: from.transport, Client: from.client, RCode: rcode, Reason: reason}
	if q != nil {
		r.Name = strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
		r.Type = typeName(q.Type)
	}
	return r
}

// typeNames are the presentation names of the common record types.
var typeNames = map[dnsmessage.Type]string{
	dnsmessage.TypeA: "A", dnsmessage.TypeNS: "NS", dnsmessage.TypeCNAME: "CNAME",
	dnsmessage.TypeSOA: "SOA", dnsmessage.TypePTR: "PTR", dnsmessage.TypeMX: "MX",
	dnsmessage.TypeTXT: "TXT", dnsmessage.TypeAAAA: "AAAA", dnsmessage.TypeSRV: "SRV",
	dnsmessage.TypeOPT: "OPT", dnsmessage.TypeSVCB: "SVCB", dnsmessage.TypeHTTPS: "HTTPS",
	dnsmessage.TypeWKS: "WKS", dnsmessage.TypeHINFO: "HINFO", dnsmessage.TypeMINFO: "MINFO",
	dnsmessage.TypeAXFR: "AXFR", dnsmessage.TypeALL: "ANY", 257: "CAA", 35: "NAPTR",
	43: "DS", 48: "DNSKEY", 52: "TLSA", 44: "SSHFP",
}

// typeName is the presentation name of t ("TYPE123" when it has none, RFC 3597).
func typeName(t dnsmessage.Type) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// rcodeName is the presentation name of an RCode the stub sends.
func rcodeName(r dnsmessage.RCode) string {
	switch r {
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	case rcodeBadVer:
		return "BADVERS"
	}
	return "RCODE" + strconv.Itoa(int(r))
}
