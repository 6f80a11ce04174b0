package dnsstub

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sandgate/sandgate/synthaddr"
)

// HostsEntry is one usable line of a hosts file.
type HostsEntry struct {
	Addr  netip.Addr // the address; never zoned
	Names []string   // the names, as written (at least one)
}

// ParseHosts reads a hosts file (hosts(5)): '#' starts a comment, and a
// line is an address followed by one or more names, separated by white
// space. Lines without a name, or with an address that does not parse or
// carries a zone ("fe80::1%eth0"), are skipped.
func ParseHosts(data []byte) []HostsEntry {
	var out []HostsEntry
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		line, _, _ = bytes.Cut(line, []byte{'#'})
		fields := strings.Fields(string(line))
		if len(fields) < 2 {
			continue
		}
		a, err := netip.ParseAddr(fields[0])
		if err != nil || a.Zone() != "" {
			continue
		}
		out = append(out, HostsEntry{Addr: a, Names: fields[1:]})
	}
	return out
}

// HostsView makes the sandbox's hosts file from the host's (hostsFile, the
// content of /etc/hosts): lines whose address is loopback or unspecified
// are kept as they are (they point only at the sandbox's own host); every
// other name that pol allows gets its own line with its synthetic address,
// and pool remembers the name's hosts-file addresses (synthaddr Reserve),
// so that the TCP side dials exactly those; every other name is dropped.
// A name gets a synthetic address of each family its hosts-file addresses
// have (IPv4 when the pool has no IPv6 range). 127.0.0.1 and ::1 lines for
// "localhost" are added when missing. The TCP side must still apply the
// policy's address checks to a hosts-file address before dialling it.
//
// It fails only when the pool has no room for a name (synthaddr.ErrExhausted).
func HostsView(hostsFile []byte, pol Policy, pool *synthaddr.Pool) ([]byte, error) {
	var out bytes.Buffer
	out.WriteString("# sandgate: this sandbox's view of the hosts file; allowed names map to synthetic addresses\n")
	var names []string                 // allowed names, in file order
	addrs := map[string][]netip.Addr{} // name → its hosts-file addresses
	haveLocal := map[netip.Addr]bool{} // loopback address → "localhost" is on its line
	for _, e := range ParseHosts(hostsFile) {
		a := e.Addr.Unmap()
		if a.IsLoopback() || a.IsUnspecified() {
			fmt.Fprintf(&out, "%s %s\n", e.Addr, strings.Join(e.Names, " "))
			for _, n := range e.Names {
				if strings.EqualFold(n, "localhost") {
					haveLocal[a] = true
				}
			}
			continue
		}
		for _, raw := range e.Names {
			n, reason := canonicalName(raw)
			if reason != "" || n == "localhost" || strings.HasSuffix(n, ".localhost") {
				continue
			}
			if ok, _ := pol.Allowed(n); !ok {
				continue
			}
			if _, seen := addrs[n]; !seen {
				names = append(names, n)
			}
			addrs[n] = append(addrs[n], a)
		}
	}
	for _, n := range names {
		m, err := pool.Reserve(n, addrs[n])
		if err != nil {
			return nil, fmt.Errorf("hosts view: %w", err)
		}
		v4, v6 := false, false
		for _, a := range addrs[n] {
			v4, v6 = v4 || a.Is4(), v6 || a.Is6()
		}
		if v4 || !m.V6.IsValid() {
			fmt.Fprintf(&out, "%s %s\n", m.V4, n)
		}
		if v6 && m.V6.IsValid() {
			fmt.Fprintf(&out, "%s %s\n", m.V6, n)
		}
	}
	if !haveLocal[netip.MustParseAddr("127.0.0.1")] {
		out.WriteString("127.0.0.1 localhost\n")
	}
	if !haveLocal[netip.IPv6Loopback()] {
		out.WriteString("::1 localhost\n")
	}
	return out.Bytes(), nil
}

// ResolvConf is the sandbox's resolv.conf: the stub at nameserver as the
// only server, and no search domains. "search ." keeps glibc from deriving
// a search domain from the host name, so a name is asked exactly as the
// program gave it; the short timeout costs nothing because the stub answers
// from memory.
func ResolvConf(nameserver netip.Addr) []byte {
	return []byte("# sandgate: the sandbox's DNS stub; it answers from the policy alone\n" +
		"nameserver " + nameserver.String() + "\n" +
		"search .\n" +
		"options timeout:2 attempts:2\n")
}
