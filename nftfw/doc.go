// Package nftfw renders a ruleplan.Plan as Linux nftables rules and
// installs, reads back, verifies and removes them through netlink (no `nft`
// binary); it is the Linux sibling of winfw. The rules live in one table of
// sandgate's own, "inet sandgate", with one chain on the output hook whose
// rules match only packets sent from sockets owned by the offline sandbox
// user, and one on the input hook that keeps the proxy ports for listeners
// carrying ruleplan.ProxySocketMark (sandgate's own proxy), so no other
// program can serve, and relay, those ports:
//
//	table inet sandgate {
//		set proxy_ports { type inet_service; elements = { 47100, ... } }
//		chain output {
//			type filter hook output priority filter; policy accept;
//			meta skuid U fib daddr type != local reject with tcp reset
//			meta skuid U meta l4proto udp fib daddr type local ct status dnat udp dport @proxy_ports accept
//			meta skuid U meta l4proto udp fib daddr type local drop
//			meta skuid U meta l4proto tcp fib daddr type local tcp dport != @proxy_ports reject with tcp reset
//			meta skuid U meta l4proto != tcp meta l4proto != udp fib daddr type local drop
//		}
//		chain input {
//			type filter hook input priority filter; policy accept;
//			meta l4proto tcp tcp flags & (syn | ack) == syn tcp dport @proxy_ports socket mark != 0x53474154 reject with tcp reset
//			meta l4proto udp udp dport @proxy_ports socket mark != 0x53474154 drop
//		}
//	}
//
// The one accepting rule (RedirectedUDPRuleName, rendered with the plan's
// local UDP block) lets through only UDP that a transparent identity run's
// redirect sent to a reserved port: the run's DNS queries to its stub; the
// input chain's InputUDPRuleName lets only sandgate's marked sockets
// receive them.
//
// Each rule carries the plan rule's name (or InputRuleName,
// InputUDPRuleName, RedirectedUDPRuleName) as its comment,
// so the table can be read back and compared with what Apply would install.
// Every change is one nftables transaction.
//
// Everything except the files ending in _linux.go is pure and tested on
// every system: Render (the plan as a Table of this package's own types),
// the comparison of a table read back (Live: the table's flags, for a
// dormant table's rules are not evaluated, its chains with their type,
// hook, priority and policy, its sets and their elements, and each rule)
// with the one wanted, and
// ApplyTo and VerifyIn, which drive a Backend. netlink_linux.go is the
// Backend that talks to the kernel (Netlink, through google/nftables and,
// for reading rules back, raw netlink in rawrules_linux.go), with Apply,
// Remove, Read and Verify for a network namespace given by path.
//
// The transparent path (transparent.go, transparent_linux.go) has rules of
// its own, rendered the same way as pure data and installed over netlink:
// a table for a sandbox's own network namespace (RenderSandbox,
// ApplySandbox) and, for the identity backend, per-run rules keyed on the
// offline uid and the run's cgroup in a table apart from setup's
// (RenderRun, AddRun, RemoveRun), with counters of what they refused.
//
// Watch keeps the table under watch while runs depend on it: it listens to
// the kernel's nftables notifications and, after every change that touches
// the table, verifies it again and reports when enforcement no longer
// matches the plan. Which notifications count and the watch loop are pure
// (watch.go); the netlink subscription is in watch_linux.go.
package nftfw
