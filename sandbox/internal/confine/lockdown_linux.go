//go:build linux

package confine

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is wrapped by the errors of a lock-down this kernel or
// architecture cannot apply at all (the caller reports the sandbox
// unavailable rather than broken).
var ErrUnsupported = errors.New("not supported here")

// Secure bits (include/uapi/linux/securebits.h): root inside the sandbox
// gets no capabilities from execve or setuid, and nobody can undo that.
const (
	secbitNoroot                  = 1 << 0
	secbitNorootLocked            = 1 << 1
	secbitNoSetuidFixup           = 1 << 2
	secbitNoSetuidFixupLocked     = 1 << 3
	secbitKeepCapsLocked          = 1 << 5
	secbitNoCapAmbientRaise       = 1 << 6
	secbitNoCapAmbientRaiseLocked = 1 << 7
)

// LockedSecurebits are the secure bits a locked-down thread has.
const LockedSecurebits = secbitNoroot | secbitNorootLocked | secbitNoSetuidFixup |
	secbitNoSetuidFixupLocked | secbitKeepCapsLocked | secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLocked

// User is who a locked-down thread becomes (the identity backend).
type User struct {
	UID, GID int
	Name     string // the user's name, for messages
	Group    string // the group's name, for messages
}

// Options say what LockDown does besides what it always does.
type Options struct {
	// AllowUnixSockets lifts the seccomp rule that refuses
	// socket(AF_UNIX, ...).
	AllowUnixSockets bool
	// SuperviseConnect, when set (and AllowUnixSockets is not), lets
	// socket(AF_UNIX) and socketpair(AF_UNIX) make stream and seqpacket
	// sockets and hands every connect(2) of the thread and its descendants
	// to a supervisor: it is called with the filter's seccomp notification
	// listener (close-on-exec) right after the filter is installed, and
	// must answer every notification from another thread (the calling one
	// is blocked in its own connect calls until then).
	SuperviseConnect func(listener int)
	// User, when set, is who the thread becomes, with no supplementary
	// groups, before its capabilities go; the Landlock scopes then close
	// the host's abstract unix sockets and signals to outside processes.
	User *User
	// FileSystem, when set, is the file system view's Landlock ruleset
	// (an *fsview.Landlock), enforced on the thread once no_new_privs is
	// set and the capabilities are gone, before the seccomp filter.
	FileSystem interface{ RestrictSelf() error }
}

// LockDown gives the calling thread (and so everything it starts)
// no_new_privs, no capabilities in any set, locked secure bits, the
// sandbox user's credentials when o.User is set (keeping the thread's
// parent-death signal and the process's non-dumpable flag, which the kernel
// resets on a uid change), a new empty session keyring, the file system
// view's Landlock ruleset, the Landlock scopes with the sandbox user, and
// the seccomp filter.
func LockDown(o Options) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	for c := 0; c < 64; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL {
			break // past the last capability this kernel knows
		}
		if err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, LockedSecurebits, 0, 0, 0); err != nil {
		return fmt.Errorf("locking the secure bits: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing the ambient capabilities: %w", err)
	}
	if o.User != nil {
		if err := switchUser(o.User); err != nil {
			return err
		}
	}
	if err := JoinSessionKeyring(); err != nil {
		return err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("dropping all capabilities: %w", err)
	}
	if o.FileSystem != nil {
		if err := o.FileSystem.RestrictSelf(); err != nil {
			return fmt.Errorf("enforcing the file system view (Landlock): %w", err)
		}
	}
	if o.User != nil {
		if err := restrictScopes(); err != nil {
			return fmt.Errorf("closing the host's abstract unix sockets and signals to the command (Landlock): %w", err)
		}
	}
	ur := unixRefused
	switch {
	case o.AllowUnixSockets:
		ur = unixAll
	case o.SuperviseConnect != nil:
		ur = unixByPath
	}
	listener, err := installFilter(ur)
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	if listener >= 0 {
		o.SuperviseConnect(listener)
	}
	return nil
}

// switchUser drops the supplementary groups and takes u's uid and gid on
// the calling thread (raw system calls: only this thread changes). The
// locked secure bits (SECBIT_NO_SETUID_FIXUP) keep the capabilities this
// needs across the switch, until LockDown removes them all.
//
// A change of uid or gid makes the kernel clear the thread's parent-death
// signal and reset the process's dumpable flag to fs.suid_dumpable; both
// are put back as they were, so that the sandbox still dies with its
// parent and CMD still cannot ptrace or read the init. (The parent may die
// before the signal is armed again: the caller checks for that.)
func switchUser(u *User) error {
	pdeath, err := parentDeathSignal()
	if err != nil {
		return fmt.Errorf("reading the parent-death signal: %w", err)
	}
	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("reading the dumpable flag: %w", err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("dropping the supplementary groups: %w", e)
	}
	gid, uid := uintptr(u.GID), uintptr(u.UID)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, gid, gid, gid); e != 0 {
		return fmt.Errorf("switching to group %s (gid %d): %w", u.Group, u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uid, uid, uid); e != 0 {
		return fmt.Errorf("switching to user %s (uid %d): %w", u.Name, u.UID, e)
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(pdeath), 0, 0, 0); err != nil {
		return fmt.Errorf("arming the parent-death signal again: %w", err)
	}
	if dumpable == 0 {
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			return fmt.Errorf("making the process non-dumpable again: %w", err)
		}
	}
	return nil
}

// parentDeathSignal returns the calling thread's parent-death signal (0:
// none).
func parentDeathSignal() (int, error) {
	var sig int32
	if err := unix.Prctl(unix.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0, 0, 0); err != nil {
		return 0, err
	}
	return int(sig), nil
}
