//go:build linux

package netroute

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// loopbackIndex is the interface index of lo in every network namespace
// (LOOPBACK_IFINDEX, fixed since Linux 3.7).
const loopbackIndex = 1

// DefaultViaLoopback adds an IPv4 and an IPv6 default route through the
// loopback device in the network namespace at netns (a path such as
// /proc/PID/ns/net; "" is the calling thread's own). A default route that
// is there already is left as it is. It needs CAP_NET_ADMIN in the
// namespace and the loopback up.
func DefaultViaLoopback(netns string) error {
	conn, err := dial(netns)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, r := range []struct {
		family  byte
		prefsrc []byte
		what    string
	}{
		{unix.AF_INET, []byte{127, 0, 0, 1}, "IPv4"},
		{unix.AF_INET6, nil, "IPv6"},
	} {
		_, err := conn.Execute(netlink.Message{
			Header: netlink.Header{
				Type:  unix.RTM_NEWROUTE,
				Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl,
			},
			Data: routeMessage(r.family, r.prefsrc),
		})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("netroute: adding the %s default route through lo: %w", r.what, err)
		}
	}
	return nil
}

// routeMessage is an rtmsg for a default route of family through the
// loopback, with attributes RTA_OIF and (when given) RTA_PREFSRC.
func routeMessage(family byte, prefsrc []byte) []byte {
	b := []byte{
		family,
		0, 0, 0, // dst_len, src_len, tos: a default route
		unix.RT_TABLE_MAIN,
		unix.RTPROT_STATIC,
		unix.RT_SCOPE_LINK,
		unix.RTN_UNICAST,
		0, 0, 0, 0, // flags
	}
	b = appendAttr(b, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, loopbackIndex))
	if prefsrc != nil {
		b = appendAttr(b, unix.RTA_PREFSRC, prefsrc)
	}
	return b
}

// appendAttr appends one route attribute (struct rtattr and its data,
// padded to four bytes).
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// dial connects to rtnetlink in the network namespace at netns ("" is the
// calling thread's own).
func dial(netns string) (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if netns != "" {
		f, err := os.Open(netns)
		if err != nil {
			return nil, fmt.Errorf("netroute: opening network namespace: %w", err)
		}
		defer f.Close()
		cfg.NetNS = int(f.Fd())
	}
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, cfg)
	if err != nil {
		return nil, fmt.Errorf("netroute: connecting to rtnetlink: %w", err)
	}
	return conn, nil
}
