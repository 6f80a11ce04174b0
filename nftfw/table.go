package nftfw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sandgate/sandgate/ruleplan"
)

// Names of sandgate's nftables objects.
const (
	// TableName is the name of sandgate's table (family inet).
	TableName = "sandgate"
	// ChainName is the name of the base chain on the output hook.
	ChainName = "output"
	// SetName is the name of the set of proxy ports (type inet_service)
	// that the offline user may reach over local TCP.
	SetName = "proxy_ports"
	// InputChainName is the name of the base chain on the input hook.
	InputChainName = "input"
	// InputRuleName is the comment of the input chain's one rule, which
	// refuses connections to the proxy ports unless the listening socket
	// carries ruleplan.ProxySocketMark.
	InputRuleName = "sandgate-proxy-ports-sandgate-only"
	// InputUDPRuleName is the comment of the input chain's rule that
	// drops UDP to the proxy ports unless the receiving socket carries
	// ruleplan.ProxySocketMark: what RedirectedUDPRuleName lets out reaches
	// sandgate's stub and no other program, even through a redirect that
	// outlived its run in the connection tracking table.
	InputUDPRuleName = "sandgate-proxy-ports-sandgate-only-udp"
	// RedirectedUDPRuleName is the comment of the output chain's rule,
	// placed just before the plan's local UDP block, that lets through the
	// offline user's UDP which a transparent identity run's own redirect
	// (IdentityRun) sent to a reserved port: its DNS queries to the run's
	// stub (see redirectedUDP).
	RedirectedUDPRuleName = "sandgate-offline-accept-redirected-udp"
)

// tableDesc names the table in messages.
const tableDesc = "the nftables table inet " + TableName

// Kernel numbers (linux/netfilter.h, linux/netfilter/nf_tables.h,
// linux/rtnetlink.h, linux/in.h), written out so that this file builds on
// every system; a Linux test checks them against golang.org/x/sys/unix.
const (
	hookInput  = 1 // NF_INET_LOCAL_IN
	hookOutput = 3 // NF_INET_LOCAL_OUT
	policyDrop = 0 // NF_DROP, as a chain policy
	policyAcc  = 1 // NF_ACCEPT, as a chain policy

	metaSKUID   = 10 // NFT_META_SKUID
	metaL4Proto = 16 // NFT_META_L4PROTO

	cmpEq  = 0 // NFT_CMP_EQ
	cmpNeq = 1 // NFT_CMP_NEQ

	payloadTransport = 2 // NFT_PAYLOAD_TRANSPORT_HEADER

	rejectTCPReset     = 1 // NFT_REJECT_TCP_RST
	rejectICMPXUnreach = 2 // NFT_REJECT_ICMPX_UNREACH
	icmpxPortUnreach   = 1 // NFT_REJECT_ICMPX_PORT_UNREACH

	socketMark = 1 // NFT_SOCKET_MARK

	verdictDrop = 0 // NF_DROP, as nftables numbers verdicts

	rtnLocal = 2 // RTN_LOCAL

	protoTCP = 6  // IPPROTO_TCP
	protoUDP = 17 // IPPROTO_UDP

	// typeInetService is nftables' number for the inet_service data
	// type (a 2-byte port).
	typeInetService = 13
)

// reg is the register every rule uses: all of it fits in the first one.
const reg = 1

// Chain is a base chain of sandgate's table.
type Chain struct {
	Name     string
	Type     string  // "filter"
	Hook     *uint32 // NF_INET_* hook; nil for a chain without one
	Priority *int32
	Policy   *uint32 // NF_DROP or NF_ACCEPT; nil when not given
}

// Set is a named set of sandgate's table.
type Set struct {
	Name     string
	KeyType  uint32 // nftables' data type number (typeInetService)
	KeyBytes uint32
	Interval bool
	IsMap    bool
}

// Rule is one rule: its name, which is stored as its comment, and its
// expressions in order.
type Rule struct {
	Name  string
	Exprs []Expr
}

// Table is sandgate's table as Apply installs it, in this package's own
// terms: Render makes it from a plan, and a Backend installs it.
type Table struct {
	Output      Chain    // the base chain on the output hook
	Input       Chain    // the base chain on the input hook
	Set         Set      // the proxy_ports set
	Ports       []uint16 // the elements of the set, sorted
	OutputRules []Rule   // the rules of Output, in order
	InputRules  []Rule   // the rules of Input, in order
}

// Render turns plan into sandgate's table for offlineUID. It refuses plans
// it cannot render faithfully.
func Render(plan ruleplan.Plan, offlineUID uint32) (Table, error) {
	ports, err := ruleplan.NormalizePorts(plan.ProxyPorts)
	if err != nil {
		return Table{}, err
	}
	if !slices.Equal(ports, plan.ProxyPorts) {
		return Table{}, fmt.Errorf("the plan's proxy ports %v are not sorted and de-duplicated", plan.ProxyPorts)
	}
	if len(ports) > ruleplan.MaxPorts {
		return Table{}, fmt.Errorf("%d proxy ports are too many: at most %d", len(ports), ruleplan.MaxPorts)
	}
	if offlineUID == 0 {
		return Table{}, errors.New("refusing to apply the offline user's rules to uid 0 (root)")
	}
	t := Table{
		Output:     baseChain(ChainName, hookOutput),
		Input:      baseChain(InputChainName, hookInput),
		Set:        Set{Name: SetName, KeyType: typeInetService, KeyBytes: 2},
		Ports:      ports,
		InputRules: []Rule{{Name: InputRuleName, Exprs: proxyPortsGuard()}, {Name: InputUDPRuleName, Exprs: proxyPortsUDPGuard()}},
	}
	seen := map[string]bool{}
	for _, rule := range plan.Rules {
		if seen[rule.Name] {
			return Table{}, fmt.Errorf("the plan names rule %s twice", rule.Name)
		}
		seen[rule.Name] = true
		exprs, err := renderRule(rule, ports, offlineUID)
		if err != nil {
			return Table{}, fmt.Errorf("rule %s: %w", rule.Name, err)
		}
		if rule.Name == ruleplan.NameLocalUDP {
			t.OutputRules = append(t.OutputRules, Rule{Name: RedirectedUDPRuleName, Exprs: redirectedUDP(offlineUID)})
		}
		t.OutputRules = append(t.OutputRules, Rule{Name: rule.Name, Exprs: exprs})
	}
	return t, nil
}

// redirectedUDP is the output chain's one accepting rule:
//
//	meta skuid UID meta l4proto udp fib daddr type local ct status & dnat != 0 udp dport @proxy_ports accept
//
// The plan refuses the offline user every local UDP, but a transparent
// identity run redirects its DNS queries (to port 53 of any address) to
// its stub on a reserved port of the loopback, and the nat hook runs
// before this chain. Only such packets pass: the destination must be
// local (the plan's first rule has already dropped everything non-local,
// so a redirect elsewhere, a container's say, gains nothing), its
// connection must have been redirected by a nat rule (only root writes
// those; the offline user cannot address a stub directly, nor another
// run's), and the port must be one of the reserved set, which sandgate's
// listeners hold for as long as a run's rules exist. A local UDP port
// outside the set stays closed whoever redirects to it.
func redirectedUDP(uid uint32) []Expr {
	return join([]Expr{
		Meta{Key: metaSKUID, Register: reg},
		Cmp{Op: cmpEq, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, uid)},
	}, l4(protoUDP), []Expr{
		Fib{Register: reg, ResultADDRTYPE: true, FlagDADDR: true},
		Cmp{Op: cmpEq, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, rtnLocal)},
	}, redirected(), []Expr{
		Payload{DestRegister: reg, Base: payloadTransport, Offset: 2, Len: 2},
		Lookup{SourceRegister: reg, SetName: SetName},
		Verdict{Kind: verdictAccept},
	})
}

// baseChain is a filter chain on hook at the filter priority that accepts
// what its rules do not refuse.
func baseChain(name string, hook uint32) Chain {
	prio, pol := int32(0), uint32(policyAcc)
	return Chain{Name: name, Type: "filter", Hook: &hook, Priority: &prio, Policy: &pol}
}

// proxyPortsGuard is the input chain's rule:
//
//	meta l4proto tcp tcp flags & (syn | ack) == syn tcp dport @proxy_ports socket mark != ruleplan.ProxySocketMark reject with tcp reset
//
// A connection attempt (SYN without ACK) to a proxy port is answered with a
// reset when the listening socket that would take it does not carry
// sandgate's mark. When nothing listens there the socket expression finds no
// socket, the rule does not match, and the kernel resets the connection as
// usual. It applies to every source, not only local ones: the ports are
// reserved for sandgate's proxy, which listens on 127.0.0.1 only, so a
// connection from anywhere to another listener on them is never sandgate's
// business to allow, and matching on every source leaves no question of
// which packets count as local (VRFs, containers, addresses moved between
// interfaces).
func proxyPortsGuard() []Expr {
	const tcpFlagsSYN, tcpFlagsACK = 0x02, 0x10
	return join([]Expr{
		Meta{Key: metaL4Proto, Register: reg},
		Cmp{Op: cmpEq, Register: reg, Data: []byte{protoTCP}},
		Payload{DestRegister: reg, Base: payloadTransport, Offset: 13, Len: 1},
		Bitwise{SourceRegister: reg, DestRegister: reg, Len: 1, Mask: []byte{tcpFlagsSYN | tcpFlagsACK}, Xor: []byte{0}},
		Cmp{Op: cmpEq, Register: reg, Data: []byte{tcpFlagsSYN}},
	}, unmarkedProxyPort(), []Expr{Reject{Type: rejectTCPReset}})
}

// proxyPortsUDPGuard is the input chain's rule for UDP:
//
//	meta l4proto udp udp dport @proxy_ports socket mark != ruleplan.ProxySocketMark drop
//
// Only sandgate's DNS stubs receive UDP on the proxy ports. When nothing
// listens there, the socket expression finds no socket, the rule does not
// match and the kernel answers port unreachable as usual.
func proxyPortsUDPGuard() []Expr {
	return join(l4(protoUDP), unmarkedProxyPort(), []Expr{Verdict{Kind: verdictDrop}})
}

// unmarkedProxyPort matches a packet to a port of the proxy_ports set
// whose receiving socket does not carry ruleplan.ProxySocketMark:
//
//	th dport @proxy_ports socket mark != ruleplan.ProxySocketMark
func unmarkedProxyPort() []Expr {
	return []Expr{
		Payload{DestRegister: reg, Base: payloadTransport, Offset: 2, Len: 2},
		Lookup{SourceRegister: reg, SetName: SetName},
		Socket{Key: socketMark, Register: reg},
		Cmp{Op: cmpNeq, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, ruleplan.ProxySocketMark)},
	}
}

// renderRule turns one plan rule into expressions:
//
//	meta skuid == UID  [protocol match]  fib daddr type [!=] local  [th dport != @proxy_ports]  verdict
func renderRule(rule ruleplan.Rule, ports []uint16, uid uint32) ([]Expr, error) {
	if rule.Identity != ruleplan.Offline {
		return nil, fmt.Errorf("only the offline identity has rules, not %q", rule.Identity)
	}
	if rule.Direction != "out" {
		return nil, fmt.Errorf("only outbound rules can be rendered, not %q", rule.Direction)
	}
	if len(rule.Name) > 200 {
		return nil, errors.New("the rule name is too long for a comment")
	}
	ex := []Expr{
		Meta{Key: metaSKUID, Register: reg},
		Cmp{Op: cmpEq, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, uid)},
	}
	l4 := func(op uint32, proto byte) []Expr {
		return []Expr{Meta{Key: metaL4Proto, Register: reg}, Cmp{Op: op, Register: reg, Data: []byte{proto}}}
	}
	switch rule.Protocol {
	case ruleplan.Any:
	case ruleplan.TCP:
		ex = append(ex, l4(cmpEq, protoTCP)...)
	case ruleplan.UDP:
		ex = append(ex, l4(cmpEq, protoUDP)...)
	case ruleplan.Other:
		ex = append(ex, l4(cmpNeq, protoTCP)...)
		ex = append(ex, l4(cmpNeq, protoUDP)...)
	default:
		return nil, fmt.Errorf("unknown protocol %q", rule.Protocol)
	}
	var op uint32
	switch rule.Remote {
	case ruleplan.Local:
		op = cmpEq
	case ruleplan.NonLocal:
		op = cmpNeq
	default:
		return nil, fmt.Errorf("unknown destination class %q", rule.Remote)
	}
	// The destination's address type, from the routing tables: "local"
	// covers loopback and every address of this host, whichever interface
	// it is on.
	ex = append(ex,
		Fib{Register: reg, ResultADDRTYPE: true, FlagDADDR: true},
		Cmp{Op: op, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, rtnLocal)},
	)
	if rule.Ports != nil {
		if rule.Protocol != ruleplan.TCP && rule.Protocol != ruleplan.UDP {
			return nil, errors.New("ports given for a protocol without ports")
		}
		// The plan writes "every port except the proxy ports" as ranges;
		// nftables says it directly with the set.
		if !slices.Equal(rule.Ports, ruleplan.Complement(ports)) {
			return nil, fmt.Errorf("ports %s are not the complement of the proxy ports", ruleplan.FormatRanges(rule.Ports))
		}
		ex = append(ex,
			Payload{DestRegister: reg, Base: payloadTransport, Offset: 2, Len: 2},
			Lookup{SourceRegister: reg, SetName: SetName, Invert: true},
		)
	}
	switch {
	case rule.Reject && rule.Protocol == ruleplan.TCP:
		ex = append(ex, Reject{Type: rejectTCPReset})
	case rule.Reject && rule.Remote == ruleplan.NonLocal:
		// Every protocol is refused; a TCP segment is answered with a
		// reset, so connect(2) fails at once (ECONNREFUSED). The kernel
		// builds no reset for anything else, which is dropped as before.
		// (An ICMP error answered IPv6 but not IPv4 SYNs routed out of
		// this host, so it is not used here.)
		ex = append(ex, Reject{Type: rejectTCPReset})
	case rule.Reject:
		ex = append(ex, Reject{Type: rejectICMPXUnreach, Code: icmpxPortUnreach})
	default:
		ex = append(ex, Verdict{Kind: verdictDrop})
	}
	return ex, nil
}

// comment encodes a rule comment as the nft tool does (NFTNL_UDATA_RULE_COMMENT).
func comment(name string) []byte {
	return append([]byte{0, byte(len(name) + 1)}, append([]byte(name), 0)...)
}

// readComment decodes a rule comment, tolerating malformed user data.
func readComment(ud []byte) string {
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			return ""
		}
		if typ == 0 {
			return strings.TrimRight(string(ud[2:2+n]), "\x00")
		}
		ud = ud[2+n:]
	}
	return ""
}
