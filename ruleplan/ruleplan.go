// Package ruleplan is the platform-neutral firewall plan of the identity
// model: the rules, as data, that confine the offline sandbox identity to the
// loopback proxy ports. The Linux nftables rules and the Windows Firewall
// rules are two renderings of one Plan. Everything here is pure.
package ruleplan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ProxySocketMark is the socket mark (SO_MARK on Linux) that sandgate's
// identity-run proxy sets on its listening sockets (0x53474154, "SGAT").
// The Linux rules answer a TCP connection attempt to a proxy port with a
// reset unless the socket that would accept it carries this mark, so that
// nothing but sandgate's own proxy (not another local user's program, nor a
// `--network full` run) can serve the ports the offline identity may reach.
// Setting SO_MARK needs CAP_NET_ADMIN in the socket's network namespace, so
// an unprivileged process cannot forge it. Accepted connections inherit the
// listener's mark (their packets carry it too; nothing else in sandgate
// matches on it).
const ProxySocketMark = 0x53474154

// Version is the version of the rule plan. Bump it whenever Build produces
// different rules for the same inputs, so installed setups are seen as stale.
// Version 2 rejects the offline identity's packets to non-local
// destinations instead of only dropping them (Linux answers TCP with a
// reset), so a program that ignores the proxy fails at once instead of
// waiting for a SYN that is never answered.
const Version = 2

// Identity names one of the two sandbox identities.
type Identity string

const (
	// Offline is the identity whose only network path is the loopback proxy.
	Offline Identity = "offline"
	// Online is the identity with unrestricted network access (no rules).
	Online Identity = "online"
)

// Protocol says which transport protocols a rule covers.
type Protocol string

const (
	// Any covers every protocol (TCP, UDP, ICMP, SCTP, ...).
	Any Protocol = "any"
	// TCP covers TCP only.
	TCP Protocol = "tcp"
	// UDP covers UDP only.
	UDP Protocol = "udp"
	// Other covers every protocol except TCP and UDP (ICMP, SCTP, ...).
	Other Protocol = "other"
)

// Remote says which destinations a rule covers.
type Remote string

const (
	// NonLocal covers every destination that is not an address of this host.
	NonLocal Remote = "non-local"
	// Local covers loopback and this host's own addresses.
	Local Remote = "local"
)

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// String formats r as "N" or "LO-HI".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// Rule is one block rule of the plan. Every rule of the plan blocks: an
// allow is expressed as a block over its complement (in Windows Firewall a
// block beats any allow, so this is the only sound way to write "only").
type Rule struct {
	Name      string      // stable name, e.g. "sandgate-offline-block-nonlocal"
	Identity  Identity    // whose traffic the rule applies to
	Direction string      // always "out"
	Protocol  Protocol    // transport protocols covered
	Remote    Remote      // destinations covered
	Ports     []PortRange // remote ports covered (TCP/UDP only); nil means every port
	// Reject asks for an immediate refusal (TCP reset / ICMP unreachable)
	// where the platform can; otherwise the packet is silently dropped.
	Reject bool
}

// Plan is the whole rule set for one configuration.
type Plan struct {
	ProxyPorts        []uint16 // sorted, de-duplicated loopback proxy ports
	AllowLocalBinding bool     // local destinations open on every port
	Rules             []Rule
}

// Rule names, stable across versions so platforms can find and replace them.
const (
	NameNonLocal   = "sandgate-offline-block-nonlocal"
	NameLocalUDP   = "sandgate-offline-block-local-udp"
	NameLocalTCP   = "sandgate-offline-block-local-tcp"
	NameLocalOther = "sandgate-offline-block-local-other"
)

// Build returns the plan for the given proxy ports and local-binding mode.
// Port 0 is refused. With no ports (a run without network) every local TCP
// port is blocked.
func Build(ports []uint16, allowLocalBinding bool) (Plan, error) {
	ps, err := NormalizePorts(ports)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{ProxyPorts: ps, AllowLocalBinding: allowLocalBinding}
	p.Rules = append(p.Rules, Rule{Name: NameNonLocal, Identity: Offline, Direction: "out", Protocol: Any, Remote: NonLocal, Reject: true})
	if !allowLocalBinding {
		p.Rules = append(p.Rules,
			Rule{Name: NameLocalUDP, Identity: Offline, Direction: "out", Protocol: UDP, Remote: Local},
			Rule{Name: NameLocalTCP, Identity: Offline, Direction: "out", Protocol: TCP, Remote: Local, Ports: Complement(ps), Reject: true},
			Rule{Name: NameLocalOther, Identity: Offline, Direction: "out", Protocol: Other, Remote: Local},
		)
	}
	return p, nil
}

// NormalizePorts sorts and de-duplicates ports, refusing port 0.
func NormalizePorts(ports []uint16) ([]uint16, error) {
	out := slices.Clone(ports)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > 0 && out[0] == 0 {
		return nil, fmt.Errorf("proxy port 0 is not a port")
	}
	return out, nil
}

// Complement returns the ranges of 1-65535 not in ports (which must be
// sorted and de-duplicated, as NormalizePorts returns them). For {1080,
// 3128} it is 1-1079, 1081-3127, 3129-65535. With no ports it is 1-65535;
// with every port it is empty.
func Complement(ports []uint16) []PortRange {
	var out []PortRange
	next := 1 // first port not yet covered
	for _, p := range ports {
		if p == 0 {
			continue
		}
		if int(p) > next {
			out = append(out, PortRange{uint16(next), p - 1})
		}
		next = int(p) + 1
	}
	if next <= 65535 {
		out = append(out, PortRange{uint16(next), 65535})
	}
	return out
}

// Summary says in words what the plan lets the offline identity do, e.g.
// "non-local destinations and local UDP blocked, local TCP only to proxy
// ports 47100-47115".
func (p Plan) Summary() string {
	if p.AllowLocalBinding {
		return "non-local destinations blocked, every local port open (allow_local_binding)"
	}
	if len(p.ProxyPorts) == 0 {
		return "every destination blocked"
	}
	return "non-local destinations and local UDP blocked, local TCP only to proxy ports " + FormatPorts(p.ProxyPorts)
}

// FormatRanges joins ranges as Windows Firewall writes them: "1-1079,1081-3127".
func FormatRanges(rs []PortRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Loopback address ranges, as literals for platforms that match by address
// rather than by address type (Windows Firewall).
var (
	LoopbackRanges    = []string{"127.0.0.0-127.255.255.255", "::1"}
	NonLoopbackRanges = []string{"0.0.0.0-126.255.255.255", "128.0.0.0-255.255.255.255", "::", "::2-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}
)

// Digest is a stable fingerprint of the plan (its version, inputs and rules),
// recorded at setup and compared at run time to detect drift.
func (p Plan) Digest() string {
	var b strings.Builder
	fmt.Fprintf(&b, "v%d ports=%v alb=%v\n", Version, p.ProxyPorts, p.AllowLocalBinding)
	for _, r := range p.Rules {
		fmt.Fprintf(&b, "%s %s %s %s %s %s reject=%v\n", r.Name, r.Identity, r.Direction, r.Protocol, r.Remote, FormatRanges(r.Ports), r.Reject)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// Drift compares what is installed with what is wanted and returns each
// difference as a sentence, e.g. "proxy ports changed from [3128] to [3128
// 8080]". It returns nil when they agree.
func Drift(installedVersion int, installedPorts []uint16, installedALB bool, want Plan) []string {
	var out []string
	if installedVersion != Version {
		out = append(out, fmt.Sprintf("rule plan version changed from %d to %d", installedVersion, Version))
	}
	have, err := NormalizePorts(installedPorts)
	if err != nil || !slices.Equal(have, want.ProxyPorts) {
		out = append(out, fmt.Sprintf("proxy ports changed from %v to %v", installedPorts, want.ProxyPorts))
	}
	if installedALB != want.AllowLocalBinding {
		out = append(out, fmt.Sprintf("allow_local_binding changed from %v to %v", installedALB, want.AllowLocalBinding))
	}
	return out
}
