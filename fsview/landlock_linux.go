//go:build linux

package fsview

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Landlock system calls are made directly (golang.org/x/sys/unix has
// their numbers and types), as package sandbox does for its scopes:
// go-landlock would add a dependency, and its all-threads enforcement
// (through psx) is not what the init wants: it restricts the one thread
// that starts the command.

// fsWriteAccess are the write rights of each Landlock ABI version (index
// = version): writing and truncating files, creating and removing
// anything, and (ABI 2) moving and linking across directories. Reading and
// executing are not handled: everything is readable, and hidden paths are
// hidden by mounts. IOCTL_DEV (ABI 5) is not handled either: ioctls on the
// terminal must keep working, and device files are opened for writing
// only where a rule allows it.
func fsWriteAccess(abi int) uint64 {
	a := uint64(unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_MAKE_CHAR |
		unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO |
		unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK | unix.LANDLOCK_ACCESS_FS_MAKE_SYM)
	if abi >= 2 {
		a |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		a |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	return a
}

// fileAccess are the rights that a rule on a file (not a directory) may
// carry.
const fileAccess = unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE

// LandlockABI returns the kernel's Landlock ABI version, or an
// *UnavailableError saying why there is none.
func LandlockABI() (int, error) {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch {
	case e == unix.ENOSYS:
		return 0, &UnavailableError{What: "Landlock (refusing writes outside the writable roots)", Hint: "this kernel has no Landlock (CONFIG_SECURITY_LANDLOCK, Linux 5.13 or later); use --fs host to run without a file system view", Err: e}
	case e == unix.EOPNOTSUPP:
		return 0, &UnavailableError{What: "Landlock (refusing writes outside the writable roots)", Hint: "Landlock is disabled on this machine: add landlock to the lsm= boot parameter, or use --fs host", Err: e}
	case e != 0:
		return 0, &UnavailableError{What: "Landlock", Hint: "querying its ABI version failed", Err: e}
	}
	return int(v), nil
}

// Landlock is a Landlock ruleset that lets the command write only below
// the plan's writable roots. Make it once the plan's mounts are in place
// (the rules hold the mounted directories), while the process may still
// open every root, and enforce it with RestrictSelf.
type Landlock struct {
	fd  int
	abi int
}

// NewLandlock builds the ruleset of p (nil, nil for ModeHost). A writable
// root that does not exist (any more) gets no rule.
func NewLandlock(p *Plan) (*Landlock, error) {
	if p.Unrestricted() {
		return nil, nil
	}
	abi, err := LandlockABI()
	if err != nil {
		return nil, err
	}
	handled := fsWriteAccess(abi)
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handled}
	size := unsafe.Offsetof(attr.Handled_access_fs) + unsafe.Sizeof(attr.Handled_access_fs)
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if e != 0 {
		return nil, fmt.Errorf("fsview: creating the Landlock ruleset: %w", e)
	}
	l := &Landlock{fd: int(fd), abi: abi}
	for _, w := range p.Writable {
		if err := l.allow(w, handled); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// allow adds a rule letting the command write below (or to) path.
func (l *Landlock) allow(path string, handled uint64) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsview: opening the writable root %s for Landlock: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fsview: %s: %w", path, err)
	}
	access := handled
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		access &= fileAccess
	}
	rule := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(fd)}
	_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(l.fd), unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("fsview: Landlock rule for %s: %w", path, e)
	}
	return nil
}

// ABI is the Landlock ABI version the ruleset was made for.
func (l *Landlock) ABI() int {
	if l == nil {
		return 0
	}
	return l.abi
}

// RestrictSelf enforces the ruleset on the calling thread and every
// process it starts from now on (nothing for a nil Landlock). The thread
// must have no_new_privs set (or CAP_SYS_ADMIN in its user namespace);
// lock it (runtime.LockOSThread) and start the command from it.
func (l *Landlock) RestrictSelf() error {
	if l == nil {
		return nil
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(l.fd), 0, 0); e != 0 {
		return fmt.Errorf("fsview: enforcing the Landlock ruleset: %w", e)
	}
	return nil
}

// Close releases the ruleset (after RestrictSelf, or when not using it).
func (l *Landlock) Close() error {
	if l == nil || l.fd < 0 {
		return nil
	}
	err := unix.Close(l.fd)
	l.fd = -1
	return err
}
