//go:build linux

package origdst

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h),
// which has the same number as SO_ORIGINAL_DST.
const ip6tSOOriginalDst = 80

// Of returns the destination c (an accepted *net.TCPConn, or any net.Conn
// that is a syscall.Conn) had before a redirect. It fails with an error
// wrapping ErrNotRedirected when the connection was made to the listener's
// own address (connection tracking then knows no other), or knows nothing
// of it at all.
func Of(c net.Conn) (netip.AddrPort, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("origdst: %T is not a socket", c)
	}
	local, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("origdst: %T is not a TCP connection", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: %w", err)
	}
	la := local.AddrPort()
	v4 := la.Addr().Unmap().Is4()
	var (
		orig netip.AddrPort
		gerr error
	)
	if err := rc.Control(func(fd uintptr) { orig, gerr = getOrig(int(fd), v4) }); err != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: %w", err)
	}
	if errors.Is(gerr, unix.ENOENT) {
		return netip.AddrPort{}, fmt.Errorf("%w (connection tracking has no entry for %s)", ErrNotRedirected, c.RemoteAddr())
	}
	if gerr != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: reading the original destination of %s: %w", c.RemoteAddr(), gerr)
	}
	if orig.Addr() == la.Addr().Unmap() && orig.Port() == la.Port() {
		return netip.AddrPort{}, fmt.Errorf("%w (%s connected to %s itself)", ErrNotRedirected, c.RemoteAddr(), la)
	}
	return orig, nil
}

// getOrig asks the kernel for the original destination of the socket fd,
// over IPv4 or IPv6.
func getOrig(fd int, v4 bool) (netip.AddrPort, error) {
	if v4 {
		var sa unix.RawSockaddrInet4
		if err := getsockopt(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST, unsafe.Pointer(&sa), unsafe.Sizeof(sa)); err != nil {
			return netip.AddrPort{}, err
		}
		if sa.Family != unix.AF_INET {
			return netip.AddrPort{}, fmt.Errorf("address family %d, want AF_INET", sa.Family)
		}
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port)), nil
	}
	var sa unix.RawSockaddrInet6
	if err := getsockopt(fd, unix.SOL_IPV6, ip6tSOOriginalDst, unsafe.Pointer(&sa), unsafe.Sizeof(sa)); err != nil {
		return netip.AddrPort{}, err
	}
	if sa.Family != unix.AF_INET6 {
		return netip.AddrPort{}, fmt.Errorf("address family %d, want AF_INET6", sa.Family)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port)), nil
}

// getsockopt is getsockopt(2) into the size bytes at p.
func getsockopt(fd, level, opt int, p unsafe.Pointer, size uintptr) error {
	n := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// ntohs turns a port as the kernel stores it (network order) into a number.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}
