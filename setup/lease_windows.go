//go:build windows

package setup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/windows"

	"github.com/sandgate/sandgate/winsec"
)

// installsOnDemand: an identity run on Windows installs a missing setup
// (the caller can always ask for elevation, and is told why first).
const installsOnDemand = true

// defaultLockDir is the state directory, where Install creates the lock
// files (only the installing user and SYSTEM may open them).
func defaultLockDir(o Options) string { return o.resolve().StateDir }

// prepareLockDir has nothing to do: Install makes the state directory.
func prepareLockDir(string) error { return nil }

// lockNames are the lock files Install creates.
var lockNames = []string{setupLockName, runsLockALB, runsLockNoALB}

// openLock opens the lock file name. A missing one (a setup made before
// sandgate had run locks, or none at all) is no lock, nil: the reconcile
// that such a setup needs creates them.
func openLock(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", name, err)
	}
	return f, nil
}

// lockByte locks byte 0 of f with LockFileEx (a nil f is no lock).
func lockByte(f *os.File, flags uint32) error {
	if f == nil {
		return nil
	}
	return windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, new(windows.Overlapped))
}

// lockExclusive waits for an exclusive lock on f.
func lockExclusive(f *os.File) error { return lockByte(f, windows.LOCKFILE_EXCLUSIVE_LOCK) }

// lockShared waits for a shared lock on f.
func lockShared(f *os.File) error { return lockByte(f, 0) }

// tryLockExclusive takes an exclusive lock on f if nobody else holds one
// (free reports whether it did).
func tryLockExclusive(f *os.File) (free bool, err error) {
	err = lockByte(f, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return false, nil
	}
	return err == nil, err
}

// ensureLockFiles creates the lock files in the state directory, each
// with the secrets file's descriptor (the installing user, who runs the
// identity runs, and SYSTEM only: the sandbox users must not hold them).
// It returns a change in words when it created any.
func ensureLockFiles(dir string) (string, error) {
	owner, err := winsec.CurrentUserSID()
	if err != nil {
		return "", err
	}
	sddl, err := winsec.SecretsFileSDDL(owner)
	if err != nil {
		return "", err
	}
	created := false
	for _, n := range lockNames {
		p := filepath.Join(dir, n)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				return "", fmt.Errorf("creating the lock file %s: %w", p, err)
			}
			f.Close()
			created = true
		}
		if err := winsec.SetSDDL(p, sddl, true); err != nil {
			return "", err
		}
	}
	if !created {
		return "", nil
	}
	return "created the lock files that coordinate identity runs in " + dir, nil
}

// removeLockFiles removes the lock files; missing ones are not an error.
func removeLockFiles(dir string) error {
	for _, n := range lockNames {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the lock file: %w", err)
		}
	}
	return nil
}

// soExclusiveAddrUse is SO_EXCLUSIVEADDRUSE, ~SO_REUSEADDR.
const soExclusiveAddrUse = ^windows.SO_REUSEADDR

// proxyListenControl sets SO_EXCLUSIVEADDRUSE on a proxy listener: no
// other socket, of any user, can bind the same port while sandgate holds
// it.
func proxyListenControl(_, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, soExclusiveAddrUse, 1)
	}); err != nil {
		return fmt.Errorf("setting SO_EXCLUSIVEADDRUSE on the proxy listener at %s: %w", address, err)
	}
	if serr != nil {
		return fmt.Errorf("setting SO_EXCLUSIVEADDRUSE on the proxy listener at %s: %w", address, serr)
	}
	return nil
}

// portTaken: on Windows any failure to listen on a reserved port counts
// as the port being taken (by another run or another program), and the
// next one is tried.
func portTaken(error) bool { return true }
