//go:build linux

package netroute

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// AddToLoopback puts each address of addrs on the loopback device of the
// network namespace at netns ("" is the calling thread's own) as a host
// address (/32 or /128, without duplicate address detection). An address
// that is there already is left as it is. The sandbox gives lo its
// synthetic range's own addresses this way (synthaddr.Pool.SelfAddrs), so
// that getaddrinfo's AI_ADDRCONFIG sees a non-loopback address of each
// family. Needs CAP_NET_ADMIN in the namespace.
func AddToLoopback(netns string, addrs ...netip.Addr) error {
	conn, err := dial(netns)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		_, err := conn.Execute(netlink.Message{
			Header: netlink.Header{
				Type:  unix.RTM_NEWADDR,
				Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl,
			},
			Data: addrMessage(a.Unmap()),
		})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("netroute: adding %s to lo: %w", a, err)
		}
	}
	return nil
}

// addrMessage is an ifaddrmsg for a as a host address on the loopback,
// with attributes IFA_LOCAL and IFA_ADDRESS.
func addrMessage(a netip.Addr) []byte {
	family, bits := byte(unix.AF_INET), byte(32)
	if a.Is6() {
		family, bits = unix.AF_INET6, 128
	}
	b := []byte{family, bits, unix.IFA_F_NODAD | unix.IFA_F_PERMANENT, unix.RT_SCOPE_UNIVERSE}
	b = binary.NativeEndian.AppendUint32(b, loopbackIndex) // ifa_index
	raw := a.AsSlice()
	b = appendAttr(b, unix.IFA_LOCAL, raw)
	b = appendAttr(b, unix.IFA_ADDRESS, raw)
	return b
}
