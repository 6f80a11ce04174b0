// Package winfw renders sandgate's platform-neutral rule plan (package
// ruleplan) as Windows Firewall rules for the offline sandbox user, and
// applies them in a fail-closed order. Everything except the files ending
// in _windows.go is pure and tested on every platform: the rendering, the
// semantic comparison of a rule read back from Windows with the rule
// wanted, the ordered list of steps that takes the installed rules to the
// wanted ones, and the executor that runs those steps against a Backend and
// verifies every rule it touches. firewall_windows.go is the Backend that
// talks to Windows Firewall (INetFwPolicy2 through COM).
package winfw

import (
	"fmt"
	"strings"

	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/winsec"
)

// Windows Firewall values (NET_FW_* in icftypes.h).
const (
	ProtocolICMPv4 = 1   // IPPROTO_ICMP
	ProtocolTCP    = 6   // NET_FW_IP_PROTOCOL_TCP
	ProtocolUDP    = 17  // NET_FW_IP_PROTOCOL_UDP
	ProtocolICMPv6 = 58  // IPPROTO_ICMPV6
	ProtocolAny    = 256 // NET_FW_IP_PROTOCOL_ANY

	DirectionOut = 2 // NET_FW_RULE_DIR_OUT
	ActionBlock  = 0 // NET_FW_ACTION_BLOCK

	// ProfilesAll is NET_FW_PROFILE2_ALL: domain, private and public.
	ProfilesAll = 0x7FFFFFFF
	// profileBits are the three real profiles (domain 1, private 2, public 4).
	profileBits = 0x7
)

// Grouping is the firewall group of every rule sandgate installs.
const Grouping = "sandgate"

// NamePrefix starts the name of every rule sandgate installs for the
// offline user; rules named so are sandgate's to replace or remove.
const NamePrefix = "sandgate-offline-"

// TransitionName names the temporary rule that blocks all traffic of the
// offline user while the other rules are replaced. It exists only during
// Apply (or after an Apply that failed, keeping the offline user shut).
const TransitionName = NamePrefix + "block-all-transition"

// IsOurs reports whether a rule name belongs to sandgate.
func IsOurs(name string) bool { return strings.HasPrefix(name, NamePrefix) }

// Rule is one Windows Firewall rule as sandgate sets it. Fields not listed
// (application, service, package, interfaces, remote users and machines,
// local addresses and ports, edge traversal, secure flags) are left at
// their defaults, which mean "any"; Compare requires them to be so.
type Rule struct {
	Name        string
	Description string
	Grouping    string
	Direction   int32
	Action      int32
	Protocol    int32
	// RemoteAddresses is a Windows address list: "*", or comma-separated
	// addresses, ranges ("a-b") and subnets ("a/len", "a/mask").
	RemoteAddresses string
	// RemotePorts is "" for protocols without ports, "*" for every port,
	// or comma-separated ports and ranges.
	RemotePorts string
	// IcmpTypesAndCodes is "*" for ICMP rules (every type), "" otherwise.
	IcmpTypesAndCodes string
	// LocalUserAuthorizedList is the SDDL selecting the offline user.
	LocalUserAuthorizedList string
	Profiles                int32
	InterfaceTypes          string
	Enabled                 bool
}

// Render returns the Windows Firewall rules for plan, applying to the user
// whose SID is offlineSID only. A plan rule with protocol Other becomes two
// rules, ICMPv4 to IPv4 loopback and ICMPv6 to IPv6 loopback (named
// NAME-icmpv4 and NAME-icmpv6): a Windows Firewall rule names one protocol
// or all of them, and the IP protocols other than TCP, UDP and the two ICMPs
// need raw sockets, which Windows gives to administrators only, never to the
// sandbox user. A TCP or UDP rule whose port list is empty (every port
// is a proxy port) blocks nothing and is left out.
func Render(plan ruleplan.Plan, offlineSID string) ([]Rule, error) {
	sddl, err := winsec.UserMatchSDDL(offlineSID)
	if err != nil {
		return nil, fmt.Errorf("firewall rules for the offline user: %w", err)
	}
	var out []Rule
	for _, r := range plan.Rules {
		if r.Identity != ruleplan.Offline {
			return nil, fmt.Errorf("rule %s: identity %q, but only the offline user has rules", r.Name, r.Identity)
		}
		if r.Direction != "out" {
			return nil, fmt.Errorf("rule %s: direction %q, only outbound rules are rendered", r.Name, r.Direction)
		}
		if !IsOurs(r.Name) || r.Name == TransitionName {
			return nil, fmt.Errorf("rule name %q is not one sandgate may own (want the prefix %q)", r.Name, NamePrefix)
		}
		base := Rule{
			Name:                    r.Name,
			Grouping:                Grouping,
			Direction:               DirectionOut,
			Action:                  ActionBlock,
			LocalUserAuthorizedList: sddl,
			Profiles:                ProfilesAll,
			InterfaceTypes:          "All",
			Enabled:                 true,
		}
		var v4, v6 []string
		switch r.Remote {
		case ruleplan.Local:
			v4, v6 = splitFamilies(ruleplan.LoopbackRanges)
		case ruleplan.NonLocal:
			v4, v6 = splitFamilies(ruleplan.NonLoopbackRanges)
		default:
			return nil, fmt.Errorf("rule %s: unknown destination class %q", r.Name, r.Remote)
		}
		base.RemoteAddresses = strings.Join(append(append([]string(nil), v4...), v6...), ",")
		what := "non-loopback destinations"
		if r.Remote == ruleplan.Local {
			what = "loopback"
		}
		switch r.Protocol {
		case ruleplan.Any:
			base.Protocol = ProtocolAny
			base.Description = "sandgate: blocks the offline sandbox user's traffic of every protocol to " + what
			out = append(out, base)
		case ruleplan.TCP, ruleplan.UDP:
			base.Protocol = ProtocolTCP
			if r.Protocol == ruleplan.UDP {
				base.Protocol = ProtocolUDP
			}
			base.RemotePorts = "*"
			if r.Ports != nil {
				if len(r.Ports) == 0 {
					continue
				}
				base.RemotePorts = ruleplan.FormatRanges(r.Ports)
			}
			base.Description = fmt.Sprintf("sandgate: blocks the offline sandbox user's %s to %s, ports %s", strings.ToUpper(string(r.Protocol)), what, base.RemotePorts)
			out = append(out, base)
		case ruleplan.Other:
			for _, fam := range []struct {
				suffix string
				proto  int32
				addrs  []string
			}{{"-icmpv4", ProtocolICMPv4, v4}, {"-icmpv6", ProtocolICMPv6, v6}} {
				if len(fam.addrs) == 0 {
					continue
				}
				x := base
				x.Name = r.Name + fam.suffix
				x.Protocol = fam.proto
				x.RemoteAddresses = strings.Join(fam.addrs, ",")
				x.IcmpTypesAndCodes = "*"
				x.Description = "sandgate: blocks the offline sandbox user's " + strings.TrimPrefix(fam.suffix, "-") + " to " + what
				out = append(out, x)
			}
		default:
			return nil, fmt.Errorf("rule %s: unknown protocol class %q", r.Name, r.Protocol)
		}
	}
	return out, nil
}

// Transition returns the temporary rule that blocks every packet of the
// offline user to every destination while Apply replaces the others.
func Transition(offlineSID string) (Rule, error) {
	sddl, err := winsec.UserMatchSDDL(offlineSID)
	if err != nil {
		return Rule{}, fmt.Errorf("firewall rules for the offline user: %w", err)
	}
	return Rule{
		Name:                    TransitionName,
		Description:             "sandgate: temporary, blocks all traffic of the offline sandbox user while its rules are replaced; left in place if that failed",
		Grouping:                Grouping,
		Direction:               DirectionOut,
		Action:                  ActionBlock,
		Protocol:                ProtocolAny,
		RemoteAddresses:         "*",
		LocalUserAuthorizedList: sddl,
		Profiles:                ProfilesAll,
		InterfaceTypes:          "All",
		Enabled:                 true,
	}, nil
}

// splitFamilies splits address literals into IPv4 and IPv6 ones.
func splitFamilies(addrs []string) (v4, v6 []string) {
	for _, a := range addrs {
		if strings.Contains(a, ":") {
			v6 = append(v6, a)
		} else {
			v4 = append(v4, a)
		}
	}
	return v4, v6
}
