package nftfw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The transparent path (issue 11) delivers every TCP connection CMD opens
// to a non-local address to sandgate's transparent listener, whether or not
// CMD knows about the proxy, refuses UDP other than DNS (QUIC included) and
// every other protocol with an ICMP error so that clients fail fast and
// fall back, and counts the refusals. This file renders its rules as pure
// data; transparent_linux.go installs and reads them.
//
// In the netns backend the rules live in the sandbox's own network
// namespace (SandboxPlan, applied by the sandbox's init, which holds
// CAP_NET_ADMIN there):
//
//	table inet sandgate {
//		chain nat_output {
//			type nat hook output priority dstnat; policy accept;
//			udp dport 53 redirect to :DNS            # with a DNS port
//			tcp dport 53 redirect to :DNS            # with a DNS port
//			meta l4proto tcp fib daddr type != local redirect to :TCP
//		}
//		chain filter_output {
//			type filter hook output priority filter; policy accept;
//			ct status dnat accept
//			meta l4proto tcp fib daddr type != local counter drop
//			meta l4proto udp fib daddr type != local counter reject with icmpx port-unreachable
//			fib daddr type != local counter reject with icmpx admin-prohibited
//		}
//	}
//
// In the identity backend the runs share the host's network namespace, so
// each run's rules are told apart by the cgroup (v2) its CMD runs in: a
// socket carries the cgroup of the process that made it, the offline user
// cannot move a process out of a cgroup root made, and so "socket cgroupv2
// level L == ID" names one run's sockets and nothing else. Runs add and
// remove their own rules (IdentityRun) in a table of their own, apart from
// the one setup installs, so that setup's comparison of its table is not
// disturbed, and so that a missing transparent table fails closed (setup's
// rules drop what is not redirected):
//
//	table inet sandgate_transparent {
//		chain nat_output {
//			type nat hook output priority dstnat; policy accept;
//			meta skuid U socket cgroupv2 level L ID udp dport 53 redirect to :DNS
//			meta skuid U socket cgroupv2 level L ID tcp dport 53 redirect to :DNS
//			meta skuid U socket cgroupv2 level L ID meta l4proto tcp fib daddr type != local redirect to :TCP
//		}
//		chain filter_output {
//			type filter hook output priority -10; policy accept;
//			meta skuid U socket cgroupv2 level L ID meta l4proto udp fib daddr type != local counter reject with icmpx port-unreachable
//			meta skuid U socket cgroupv2 level L ID meta l4proto != tcp fib daddr type != local counter reject with icmpx admin-prohibited
//		}
//	}
//
// In both, the nat chain sees the first packet of each connection before
// any filter chain (priority dstnat is -100), so a redirected connection is
// already addressed to the loopback when it is filtered. In the sandbox,
// "ct status dnat accept" lets every later packet of a redirected
// connection (either way) through without a routing lookup, which would
// otherwise cost each packet of a bulk transfer.

// Names of the transparent path's nftables objects.
const (
	// SandboxTableName is the table the sandbox's init installs in the
	// sandbox's own network namespace (family inet).
	SandboxTableName = "sandgate"
	// RunTableName is the identity backend's table of per-run rules in
	// the host's network namespace (family inet).
	RunTableName = "sandgate_transparent"
	// NATChainName is the nat chain on the output hook.
	NATChainName = "nat_output"
	// FilterChainName is the filter chain on the output hook.
	FilterChainName = "filter_output"
)

// Names (comments) of the rules that count refusals.
const (
	RuleTCPUnredirected = "sandgate-tcp-unredirected" // sandbox only: a TCP packet to a non-local address that was not redirected
	RuleUDPRefused      = "sandgate-udp-refused"      // a UDP packet to a non-local address (QUIC included)
	RuleOtherRefused    = "sandgate-other-refused"    // a packet of any other protocol to a non-local address
	ruleDNSUDP          = "sandgate-dns-udp"
	ruleDNSTCP          = "sandgate-dns-tcp"
	ruleTCPRedirect     = "sandgate-tcp-redirect"
	ruleRedirected      = "sandgate-redirected"
)

// More kernel numbers (see table.go).
const (
	priorityDstNAT        = -100   // NF_IP_PRI_NAT_DST
	priorityBeforeFilter  = -10    // the identity filter chain runs before setup's (0)
	icmpxAdminProhibited  = 3      // NFT_REJECT_ICMPX_ADMIN_PROHIBITED
	socketCgroupV2        = 3      // NFT_SOCKET_CGROUPV2
	natRangeProtoSpecfied = 2      // NF_NAT_RANGE_PROTO_SPECIFIED
	ctKeyStatus           = 2      // NFT_CT_STATUS
	ctStatusDstNAT        = 1 << 5 // IPS_DST_NAT
	verdictAccept         = 1      // NF_ACCEPT, as nftables numbers verdicts
	dnsPort               = 53
)

// Counter counts the packets and bytes that reach it.
type Counter struct{}

// String is the canonical text of the expression.
func (Counter) String() string { return "counter" }

// Immediate loads constant data into a register.
type Immediate struct {
	Register uint32
	Data     []byte
}

// String is the canonical text of the expression.
func (e Immediate) String() string {
	return fmt.Sprintf("immediate reg=%d data=%x", e.Register, e.Data)
}

// Redirect rewrites the destination to the local host (127.0.0.1 or ::1 on
// the output hook) and, with RegisterProtoMin, the port to the one in that
// register.
type Redirect struct {
	RegisterProtoMin uint32
	Flags            uint32
}

// String is the canonical text of the expression.
func (e Redirect) String() string {
	return fmt.Sprintf("redirect reg=%d flags=%d", e.RegisterProtoMin, e.Flags)
}

// Ct loads a property of the packet's connection tracking entry
// (NFT_CT_*) into a register.
type Ct struct {
	Key      uint32
	Register uint32
}

// String is the canonical text of the expression.
func (e Ct) String() string { return fmt.Sprintf("ct key=%d reg=%d", e.Key, e.Register) }

// RuleTable is a table of the transparent path as pure data: its base
// chains, each with its rules in order.
type RuleTable struct {
	Name   string
	Chains []RuleChain
}

// RuleChain is a base chain with its rules.
type RuleChain struct {
	Chain
	Rules []Rule
}

// Chain returns the table's chain called name, or nil.
func (t *RuleTable) Chain(name string) *RuleChain {
	for i := range t.Chains {
		if t.Chains[i].Name == name {
			return &t.Chains[i]
		}
	}
	return nil
}

// SandboxPlan is what the transparent path needs inside a sandbox's own
// network namespace.
type SandboxPlan struct {
	// TCPPort is the port of the transparent listener, which must listen
	// on 127.0.0.1 and on [::1] (where the output hook's redirect sends
	// IPv4 and IPv6).
	TCPPort uint16
	// DNSPort, when not 0, is the port of the DNS stub (UDP and TCP, on
	// 127.0.0.1 and ::1): every query to port 53 of any address goes
	// there, so resolvers that ignore resolv.conf meet the policy too.
	// With 0, DNS to a non-local address is refused like any other UDP.
	DNSPort uint16
}

// RenderSandbox is the sandbox's table for p.
func RenderSandbox(p SandboxPlan) (RuleTable, error) {
	if p.TCPPort == 0 {
		return RuleTable{}, errors.New("the transparent listener's port is 0")
	}
	var nat []Rule
	if p.DNSPort != 0 {
		nat = append(nat,
			Rule{Name: ruleDNSUDP, Exprs: join(l4(protoUDP), dport(dnsPort), redirectTo(p.DNSPort))},
			Rule{Name: ruleDNSTCP, Exprs: join(l4(protoTCP), dport(dnsPort), redirectTo(p.DNSPort))})
	}
	nat = append(nat, Rule{Name: ruleTCPRedirect, Exprs: join(l4(protoTCP), nonLocal(), redirectTo(p.TCPPort))})
	filter := []Rule{
		{Name: ruleRedirected, Exprs: join(redirected(), []Expr{Verdict{Kind: verdictAccept}})},
		{Name: RuleTCPUnredirected, Exprs: join(l4(protoTCP), nonLocal(), []Expr{Counter{}, Verdict{Kind: verdictDrop}})},
		{Name: RuleUDPRefused, Exprs: join(l4(protoUDP), nonLocal(), []Expr{Counter{}, Reject{Type: rejectICMPXUnreach, Code: icmpxPortUnreach}})},
		{Name: RuleOtherRefused, Exprs: join(nonLocal(), []Expr{Counter{}, Reject{Type: rejectICMPXUnreach, Code: icmpxAdminProhibited}})},
	}
	return RuleTable{Name: SandboxTableName, Chains: []RuleChain{
		{Chain: outputChain(NATChainName, "nat", priorityDstNAT), Rules: nat},
		{Chain: outputChain(FilterChainName, "filter", 0), Rules: filter},
	}}, nil
}

// IdentityRun is one identity-backend run's share of the transparent path.
type IdentityRun struct {
	// ID names the run's rules (their comments start with RunPrefix(ID));
	// letters, digits, '.', '_' and '-', at most 64 bytes.
	ID string
	// UID is the offline user's uid (never 0).
	UID uint32
	// CgroupID is the id of the run's cgroup v2 (the inode number of its
	// directory), in which CMD and everything it starts run.
	CgroupID uint64
	// CgroupLevel is the depth of that cgroup in the whole cgroup v2
	// hierarchy (the root is 0; /sandgate/run-1 is 2).
	CgroupLevel uint32
	// TCPPort is the port of the run's transparent listener on
	// 127.0.0.1 and [::1].
	TCPPort uint16
	// DNSPort, when not 0, is the port of the run's DNS stub (UDP and
	// TCP, on 127.0.0.1 and ::1), where the run's queries to port 53 go.
	DNSPort uint16
}

// RunPrefix is how the comments of the rules of run id begin.
func RunPrefix(id string) string { return "sandgate-run " + id + " " }

// RenderRunTable is the identity backend's table without any run's rules.
func RenderRunTable() RuleTable {
	return RuleTable{Name: RunTableName, Chains: []RuleChain{
		{Chain: outputChain(NATChainName, "nat", priorityDstNAT)},
		{Chain: outputChain(FilterChainName, "filter", priorityBeforeFilter)},
	}}
}

// RenderRun returns the rules of run r for the nat and the filter chain of
// the identity backend's table.
func RenderRun(r IdentityRun) (nat, filter []Rule, err error) {
	if err := validRunID(r.ID); err != nil {
		return nil, nil, err
	}
	switch {
	case r.UID == 0:
		return nil, nil, errors.New("refusing transparent rules for uid 0 (root)")
	case r.CgroupID == 0 || r.CgroupLevel == 0:
		return nil, nil, errors.New("the run's cgroup id and level must not be 0 (the root cgroup holds every process)")
	case r.TCPPort == 0:
		return nil, nil, errors.New("the transparent listener's port is 0")
	}
	scope := []Expr{
		Meta{Key: metaSKUID, Register: reg},
		Cmp{Op: cmpEq, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, r.UID)},
		Socket{Key: socketCgroupV2, Level: r.CgroupLevel, Register: reg},
		Cmp{Op: cmpEq, Register: reg, Data: binary.NativeEndian.AppendUint64(nil, r.CgroupID)},
	}
	name := func(what string) string { return RunPrefix(r.ID) + what }
	if r.DNSPort != 0 {
		nat = append(nat,
			Rule{Name: name(ruleDNSUDP), Exprs: join(scope, l4(protoUDP), dport(dnsPort), redirectTo(r.DNSPort))},
			Rule{Name: name(ruleDNSTCP), Exprs: join(scope, l4(protoTCP), dport(dnsPort), redirectTo(r.DNSPort))})
	}
	nat = append(nat, Rule{Name: name(ruleTCPRedirect), Exprs: join(scope, l4(protoTCP), nonLocal(), redirectTo(r.TCPPort))})
	filter = []Rule{
		{Name: name(RuleUDPRefused), Exprs: join(scope, l4(protoUDP), nonLocal(), []Expr{Counter{}, Reject{Type: rejectICMPXUnreach, Code: icmpxPortUnreach}})},
		{Name: name(RuleOtherRefused), Exprs: join(scope,
			[]Expr{Meta{Key: metaL4Proto, Register: reg}, Cmp{Op: cmpNeq, Register: reg, Data: []byte{protoTCP}}},
			nonLocal(), []Expr{Counter{}, Reject{Type: rejectICMPXUnreach, Code: icmpxAdminProhibited}})},
	}
	return nat, filter, nil
}

// validRunID checks a run id for use in rule comments.
func validRunID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("run id %q: want 1 to 64 bytes", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-", c)) {
			return fmt.Errorf("run id %q: only letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}

// Refusals counts the packets the transparent path refused, by kind.
type Refusals struct {
	TCP   uint64 // TCP packets to a non-local address that were not redirected (sandbox only)
	UDP   uint64 // UDP packets to a non-local address (QUIC included; DNS too when there is no stub)
	Other uint64 // packets of other protocols (ICMP, ...) to a non-local address
}

// Total is the sum of the counts.
func (r Refusals) Total() uint64 { return r.TCP + r.UDP + r.Other }

// add counts packets for the rule named name (a rule name, or one of a
// run's, after its prefix).
func (r *Refusals) add(name string, packets uint64) {
	switch name {
	case RuleTCPUnredirected:
		r.TCP += packets
	case RuleUDPRefused:
		r.UDP += packets
	case RuleOtherRefused:
		r.Other += packets
	}
}

// outputChain is a base chain of type typ on the output hook at prio that
// accepts what its rules do not refuse.
func outputChain(name, typ string, prio int32) Chain {
	hook, pol := uint32(hookOutput), uint32(policyAcc)
	return Chain{Name: name, Type: typ, Hook: &hook, Priority: &prio, Policy: &pol}
}

// l4 matches the transport protocol proto.
func l4(proto byte) []Expr {
	return []Expr{Meta{Key: metaL4Proto, Register: reg}, Cmp{Op: cmpEq, Register: reg, Data: []byte{proto}}}
}

// dport matches the transport header's destination port.
func dport(p uint16) []Expr {
	return []Expr{
		Payload{DestRegister: reg, Base: payloadTransport, Offset: 2, Len: 2},
		Cmp{Op: cmpEq, Register: reg, Data: binary.BigEndian.AppendUint16(nil, p)},
	}
}

// nonLocal matches a destination that is not an address of this network
// namespace (loopback included), as the routing tables say.
func nonLocal() []Expr {
	return []Expr{
		Fib{Register: reg, ResultADDRTYPE: true, FlagDADDR: true},
		Cmp{Op: cmpNeq, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, rtnLocal)},
	}
}

// redirected matches a packet of a connection a nat rule redirected
// ("ct status dnat").
func redirected() []Expr {
	return []Expr{
		Ct{Key: ctKeyStatus, Register: reg},
		Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ctStatusDstNAT), Xor: binary.NativeEndian.AppendUint32(nil, 0)},
		Cmp{Op: cmpNeq, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, 0)},
	}
}

// redirectTo redirects to port p of the loopback.
func redirectTo(p uint16) []Expr {
	return []Expr{
		Immediate{Register: reg, Data: binary.BigEndian.AppendUint16(nil, p)},
		Redirect{RegisterProtoMin: reg, Flags: natRangeProtoSpecfied},
	}
}

// join concatenates expression lists.
func join(parts ...[]Expr) []Expr {
	var out []Expr
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
