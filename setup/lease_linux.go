//go:build linux

package setup

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/ruleplan"
)

// DefaultLockDir holds the locks that coordinate identity runs with each
// other on Linux: root-only, and cleared at boot.
const DefaultLockDir = "/run/sandgate"

// installsOnDemand: an identity run on Linux does not install a missing
// setup (it names the command instead).
const installsOnDemand = false

func defaultLockDir(Options) string { return DefaultLockDir }

// prepareLockDir creates the lock directory, root-only.
func prepareLockDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return nil
}

// openLock opens (creating it) the lock file name.
func openLock(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", name, err)
	}
	return f, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// lockExclusive waits for an exclusive lock on f.
func lockExclusive(f *os.File) error { return flock(f, unix.LOCK_EX) }

// lockShared waits for a shared lock on f.
func lockShared(f *os.File) error { return flock(f, unix.LOCK_SH) }

// tryLockExclusive takes an exclusive lock on f if nobody else holds one
// (free reports whether it did).
func tryLockExclusive(f *os.File) (free bool, err error) {
	err = flock(f, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// reconcileNotify is Reconcile; on Linux it has nothing to say on the way.
func reconcileNotify(o Options, _ func(string)) (Marker, []string, error) { return Reconcile(o) }

// proxyListenControl sets SO_MARK = ruleplan.ProxySocketMark on a proxy
// listener before it binds; connections it accepts inherit the mark.
func proxyListenControl(_, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, ruleplan.ProxySocketMark)
	}); err != nil {
		return fmt.Errorf("setting the socket mark of the proxy listener at %s: %w", address, err)
	}
	if serr != nil {
		return fmt.Errorf("setting the socket mark %#x (SO_MARK, which needs CAP_NET_ADMIN) that lets the offline user reach the proxy at %s: %w", ruleplan.ProxySocketMark, address, serr)
	}
	return nil
}

// portTaken reports whether a listen error means another socket has the
// port.
func portTaken(err error) bool { return errors.Is(err, unix.EADDRINUSE) }
