//go:build linux

package nftfw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Reading the sandbox's refusal counters from outside the sandbox. nftables
// asks for CAP_NET_ADMIN twice for every request: of whoever opened the
// netlink socket, in the user namespace that owns the socket's network
// namespace, and of whoever sends the request, in that same user namespace.
// The sandbox's init passes the first test (it opens the socket in its own
// namespaces before it locks itself down) but not the second once locked
// down; sandgate's parent passes the second (it owns the sandbox's user
// namespace, which gives it every capability there) but cannot enter the
// sandbox's network namespace to open a socket. So the init opens the
// socket and hands it to the parent, which reads through it.

// OpenCounterSocket opens a netlink socket to nftables in the calling
// thread's network namespace, for ReadSandboxRefusals (by this process or,
// passed over a unix socket, by another). It is close-on-exec.
func OpenCounterSocket() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket to nftables: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding the netlink socket to nftables: %w", err)
	}
	return os.NewFile(uintptr(fd), "nftables-counters"), nil
}

// CloseCounterSocket closes a socket from OpenCounterSocket or
// ApplySandboxCounters without waiting for the kernel. The last close of a
// netfilter netlink socket makes the kernel finish freeing the nftables
// transactions committed before it (it flushes nf_tables' destroy work,
// which waits for an RCU grace period: 8-16 ms on a busy machine with
// HZ=250). A run as short as `true` would end inside that wait, in
// sandgate's own exit if not here, since a process's exit closes its
// descriptors before its parent sees it end.
//
// So the last reference goes to the kernel instead: f rides, with one end
// of a new unix socket pair, in a message to that same end, and both ends
// are closed. The end is then referenced only by its own queued message, a
// cycle nothing can reach, which the kernel's unix garbage collector frees
// (a work item since Linux 6.10), closing f there. Nobody can receive the
// message, so the socket is as closed as with close(2). On older kernels
// the collector runs in the closing thread, and this is a plain close.
func CloseCounterSocket(f *os.File) {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		f.Close()
		return
	}
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.Sendmsg(sp[1], []byte{0}, unix.UnixRights(sp[0], int(fd)), nil, 0)
		})
	}
	f.Close() // not the last reference when the message went out
	unix.Close(sp[0])
	unix.Close(sp[1])
}

// ReadSandboxRefusals reads the refusal counters of the sandbox's table
// through f, a socket from OpenCounterSocket, in one rule dump. The caller
// must hold CAP_NET_ADMIN in the user namespace that owns the socket's
// network namespace (sandgate's parent does, over its sandbox). One reader
// at a time.
func ReadSandboxRefusals(f *os.File) (Refusals, error) {
	var r Refusals
	rc, err := f.SyscallConn()
	if err != nil {
		return r, fmt.Errorf("reading the sandbox's counters: %w", err)
	}
	var derr error
	if err := rc.Control(func(fd uintptr) { r, derr = dumpCounters(int(fd)) }); err != nil {
		return r, fmt.Errorf("reading the sandbox's counters: %w", err)
	}
	if derr != nil {
		return Refusals{}, netlinkErr("reading the sandbox's counters", derr)
	}
	return r, nil
}

// dumpCounters asks for the rules of the sandbox's table over the netlink
// socket fd and adds up their counters.
func dumpCounters(fd int) (Refusals, error) {
	var r Refusals
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return r, err
	}
	seq := uint32(time.Now().UnixNano())
	if err := unix.Sendto(fd, getRulesRequest(seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return r, err
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return r, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return r, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // an answer to an earlier request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return r, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return r, syscall.Errno(-errno)
					}
				}
				continue
			}
			if len(m.Data) < 4 {
				return r, errors.New("short rule message")
			}
			rule, err := decodeRule(m.Data[4:])
			if err != nil {
				return r, err
			}
			r.add(readComment(rule.UserData), packetsOf(rule.Exprs))
		}
	}
}

// getRulesRequest is a dump request for the rules of the sandbox's table.
func getRulesRequest(seq uint32) []byte {
	attrs, _ := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(SandboxTableName + "\x00")},
	})
	body := append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...)
	hdr := make([]byte, unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(hdr[0:], uint32(len(hdr)+len(body)))
	binary.NativeEndian.PutUint16(hdr[4:], uint16(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETRULE))
	binary.NativeEndian.PutUint16(hdr[6:], uint16(unix.NLM_F_REQUEST|unix.NLM_F_DUMP))
	binary.NativeEndian.PutUint32(hdr[8:], seq)
	return append(hdr, body...)
}

// packetsOf returns the packets counted by a counter among exprs (read
// back as Opaque), or 0.
func packetsOf(exprs []Expr) uint64 {
	for _, e := range exprs {
		o, ok := e.(Opaque)
		if !ok || o.Name != "counter" {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(o.Data)
		if err != nil {
			return 0
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_COUNTER_PACKETS {
				return ad.Uint64()
			}
		}
	}
	return 0
}
