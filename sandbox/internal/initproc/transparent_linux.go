//go:build linux

package initproc

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/starttrace"
	"github.com/sandgate/sandgate/netroute"
	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// transparentOff says why the sandbox has no transparent path although the
// run asked for one ("": it has one, or none was asked for). The init makes
// one sandbox, so this is the init's state, reported with Started.
var transparentOff string

// transparentOrOff sets up the transparent path t and returns its
// descriptors; when the kernel refuses a part of it (no nf_tables, say),
// it closes its sockets and records why in transparentOff: CMD then runs
// without the path, which confines it no less (what was made of it before
// the failure only refuses: rules without routes, or routes to closed
// sockets). The path's /etc/hosts and /etc/resolv.conf views stay: they
// are bound while the path is made (see startNetwork), and without the
// path they change nothing CMD can reach (its names have no route, and
// the stub the resolver names refuses at once, as the host's resolver,
// unreachable from the sandbox, would fail).
func transparentOrOff(t *initproto.Transparent) []int {
	fds, err := setupTransparent(t)
	if err != nil {
		transparentOff = err.Error()
		return nil
	}
	return fds
}

// setupTransparent gives the sandbox's network namespace (whose loopback
// is up) the transparent path of t and returns its descriptors in the
// order of initproto.TransparentFiles. The init holds CAP_NET_ADMIN in
// the namespace; CMD, which starts later, holds nothing, so it can change
// none of it.
func setupTransparent(t *initproto.Transparent) (fds []int, err error) {
	defer func() {
		if err != nil {
			closeFDs(fds)
			fds = nil
		}
	}()
	tcpPort, fds, err := listenPair(unix.SOCK_STREAM, fds)
	if err != nil {
		return fds, setupErr(err, "creating the transparent listener")
	}
	dnsPort, fds, err := dnsSockets(fds)
	if err != nil {
		return fds, setupErr(err, "creating the DNS stub's sockets")
	}
	starttrace.Mark("transparent sockets")
	// The socket the table is installed through becomes the counter
	// socket: closing it here would wait for the kernel to free the
	// transaction (see nftfw.ApplySandboxCounters).
	counters, err := nftfw.ApplySandboxCounters("", nftfw.SandboxPlan{TCPPort: uint16(tcpPort), DNSPort: uint16(dnsPort)})
	if err != nil {
		return fds, asSetupError(err)
	}
	starttrace.Mark("nftables table applied")
	// The init closes its copies once they are passed; the file's own
	// close would then close the descriptor twice.
	fd, err := unix.Dup(int(counters.Fd()))
	counters.Close()
	if err != nil {
		return fds, setupErr(err, "passing the nftables counter socket")
	}
	unix.CloseOnExec(fd)
	fds = append(fds, fd)
	starttrace.Mark("counter socket")
	// Routes last: with them and without the rules, connections to other
	// addresses would wait for a timeout instead of failing at once.
	var self []netip.Addr
	for _, s := range t.SelfAddrs {
		a, perr := netip.ParseAddr(s)
		if perr != nil {
			return fds, setupErr(perr, "the transparent path's own address")
		}
		self = append(self, a)
	}
	if err := netroute.AddToLoopback("", self...); err != nil {
		return fds, setupErr(err, "giving the sandbox's loopback its own addresses")
	}
	if err := netroute.DefaultViaLoopback(""); err != nil {
		return fds, setupErr(err, "routing the sandbox's connections to its loopback")
	}
	starttrace.Mark("routes on lo")
	return fds, nil
}

// dnsSockets appends the DNS stub's sockets (UDP, TCP on 127.0.0.1, then
// on [::1]) on one free port, and returns the port.
func dnsSockets(fds []int) (int, []int, error) {
	// In a fresh namespace the port the kernel picks for UDP is free for
	// TCP too; a clash (another socket of the init) is retried.
	var err error
	for range 8 {
		var port, fd int
		if fd, port, err = bindLoopback(unix.AF_INET, unix.SOCK_DGRAM, 0); err != nil {
			return 0, fds, err
		}
		got := []int{fd}
		for _, s := range []struct{ family, typ int }{{unix.AF_INET, unix.SOCK_STREAM}, {unix.AF_INET6, unix.SOCK_DGRAM}, {unix.AF_INET6, unix.SOCK_STREAM}} {
			if fd, _, err = bindLoopback(s.family, s.typ, port); err != nil {
				break
			}
			got = append(got, fd)
		}
		if err == nil {
			return port, append(fds, got...), nil
		}
		closeFDs(got)
		if !errors.Is(err, unix.EADDRINUSE) {
			return 0, fds, err
		}
	}
	return 0, fds, err
}

// listenPair appends sockets of type typ on 127.0.0.1 and [::1] at one
// free port, and returns the port.
func listenPair(typ int, fds []int) (int, []int, error) {
	var err error
	for range 8 {
		var fd4, fd6, port int
		if fd4, port, err = bindLoopback(unix.AF_INET, typ, 0); err != nil {
			return 0, fds, err
		}
		if fd6, _, err = bindLoopback(unix.AF_INET6, typ, port); err == nil {
			return port, append(fds, fd4, fd6), nil
		}
		unix.Close(fd4)
		if !errors.Is(err, unix.EADDRINUSE) {
			return 0, fds, err
		}
	}
	return 0, fds, err
}

// bindLoopback makes a socket of family and typ bound to the loopback
// address of the family at port (0: a free one), listening when it is a
// stream socket, and returns it with its port.
func bindLoopback(family, typ, port int) (int, int, error) {
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return -1, 0, fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
		sa = &unix.SockaddrInet6{Addr: netip.IPv6Loopback().As16(), Port: port}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("bind port %d of the loopback: %w", port, err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
			unix.Close(fd)
			return -1, 0, fmt.Errorf("listen: %w", err)
		}
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("getsockname: %w", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		return fd, a.Port, nil
	case *unix.SockaddrInet6:
		return fd, a.Port, nil
	}
	unix.Close(fd)
	return -1, 0, errors.New("getsockname: not an internet address")
}

// closeFDs closes every descriptor of fds.
func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// applyReplacements binds each file of files read-only over its target
// in the sandbox's mount namespace (private to the sandbox: nothing
// propagates back to the host). A target that is a symbolic link is
// replaced where it points, as any bind mount would. A target that does
// not exist is left missing: nothing can be bound over it, and a resolver
// without resolv.conf asks 127.0.0.1, the stub, anyway.
func applyReplacements(files []initproto.ReplaceFile) error {
	for _, f := range files {
		if _, err := os.Stat(f.Target); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := unix.Mount(f.Source, f.Target, "", unix.MS_BIND, ""); err != nil {
			return setupErr(err, "binding sandgate's %s over %s", f.Source, f.Target)
		}
		// A read-only remount must keep the flags the kernel locked on
		// the source's mount (nosuid, nodev, ...), or it is refused.
		var st unix.Statfs_t
		if err := unix.Statfs(f.Target, &st); err != nil {
			return setupErr(err, "reading the mount flags of %s", f.Target)
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
		for _, m := range []struct{ st, ms uintptr }{
			{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
			{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
		} {
			if uintptr(st.Flags)&m.st != 0 {
				flags |= m.ms
			}
		}
		if err := unix.Mount("", f.Target, "", flags, ""); err != nil {
			return setupErr(err, "making %s read-only", f.Target)
		}
	}
	return nil
}
