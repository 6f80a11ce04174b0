// Package firewall renders a ruleplan.Plan as Linux nftables rules and
// installs, reads back, verifies and removes them through netlink (no `nft`
// binary). The rules live in one table of sandgate's own, "inet sandgate",
// with one chain on the output hook whose rules match only packets sent from
// sockets owned by the offline sandbox user, and one on the input hook that
// keeps the proxy ports for listeners carrying ProxySocketMark (sandgate's
// own proxy), so no other program can serve, and relay, those ports:
//
//	table inet sandgate {
//		set proxy_ports { type inet_service; elements = { 47100, ... } }
//		chain output {
//			type filter hook output priority filter; policy accept;
//			meta skuid U fib daddr type != local drop
//			meta skuid U meta l4proto udp fib daddr type local drop
//			meta skuid U meta l4proto tcp fib daddr type local tcp dport != @proxy_ports reject with tcp reset
//			meta skuid U meta l4proto != tcp meta l4proto != udp fib daddr type local drop
//		}
//		chain input {
//			type filter hook input priority filter; policy accept;
//			meta l4proto tcp tcp flags & (syn | ack) == syn tcp dport @proxy_ports socket mark != 0x53474154 reject with tcp reset
//		}
//	}
//
// Each rule carries the plan rule's name (or InputRuleName) as its comment, so the table can be
// read back and compared with what Apply would install. Every change is one
// nftables transaction. The package does nothing on systems other than Linux.
package firewall
