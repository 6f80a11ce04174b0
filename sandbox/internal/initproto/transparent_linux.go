//go:build linux

package initproto

// MaxFiles bounds the descriptors one Status carries (Recv's buffer).
const MaxFiles = 16

// Transparent is what the init of a netns run sets up for the transparent
// path in the sandbox's network namespace, before CMD starts: the
// synthetic range's own addresses on lo, default routes through lo, the
// transparent listener (127.0.0.1 and [::1], one port), the DNS stub's
// sockets (UDP and TCP, 127.0.0.1 and [::1], one port) and nftables rules
// that send every TCP connection to a non-local address to the listener,
// every query to port 53 to the stub, and refuse the rest.
type Transparent struct {
	SelfAddrs []string `json:"self"` // addresses put on lo (synthaddr.Pool.SelfAddrs)
}

// TransparentFiles is the order of the descriptors a Started status
// carries after the proxy's two listeners when Config.Transparent is set.
const (
	FileTCP4     = iota // the transparent listener on 127.0.0.1
	FileTCP6            // the transparent listener on [::1], same port
	FileDNSUDP4         // the DNS stub's UDP socket on 127.0.0.1
	FileDNSTCP4         // the DNS stub's TCP listener on 127.0.0.1
	FileDNSUDP6         // the DNS stub's UDP socket on [::1]
	FileDNSTCP6         // the DNS stub's TCP listener on [::1]
	FileCounters        // a netlink socket to the sandbox's nftables (nftfw.ApplySandboxCounters)
	TransparentFiles
)

// ReplaceFile is a file bound read-only over Target in the sandbox's
// mount namespace. Source is a file sandgate made for the run.
type ReplaceFile struct {
	Source string `json:"src"`
	Target string `json:"dst"`
	// Transparent marks the transparent path's views (hosts, resolv.conf):
	// without the path, the init does not bind them.
	Transparent bool `json:"transparent,omitempty"`
}
