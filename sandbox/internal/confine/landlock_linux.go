//go:build linux

package confine

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The three system calls are made directly (golang.org/x/sys/unix has their
// numbers and types): go-landlock's syscall package would link libpsx into
// sandgate for its all-threads calls, which the sandbox does not use (it
// restricts one thread, like its seccomp filter).

// LandlockScopeABI is the first Landlock ABI version that can scope
// abstract unix sockets and signals (Linux 6.12).
const LandlockScopeABI = 6

// landlockScopes are the IPC scopes the identity backend closes: a command
// in the sandbox can neither connect to an abstract unix socket created
// outside its Landlock domain (the sandbox user shares the host's network
// namespace, where abstract sockets live) nor signal a process outside it.
const landlockScopes = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL

// LandlockABI returns the kernel's Landlock ABI version; the error is the
// system call's (ENOSYS: no Landlock in this kernel; EOPNOTSUPP: Landlock
// disabled at boot).
func LandlockABI() (int, error) {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0, e
	}
	return int(v), nil
}

// restrictScopes puts the calling thread (and so every process it starts)
// in a new Landlock domain with landlockScopes and no file system or
// network rules. The thread must have no_new_privs set (or CAP_SYS_ADMIN).
func restrictScopes() error {
	abi, err := LandlockABI()
	if err != nil {
		return fmt.Errorf("%w: querying the Landlock ABI version: %w", ErrUnsupported, err)
	}
	if abi < LandlockScopeABI {
		return fmt.Errorf("%w: Landlock ABI version %d, scopes need %d", ErrUnsupported, abi, LandlockScopeABI)
	}
	// Only the fields up to Scoped (ABI 6): the kernel takes the size.
	attr := unix.LandlockRulesetAttr{Scoped: landlockScopes}
	size := unsafe.Offsetof(attr.Scoped) + unsafe.Sizeof(attr.Scoped)
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if e != 0 {
		return fmt.Errorf("creating the Landlock ruleset: %w", e)
	}
	defer unix.Close(int(fd))
	// No LANDLOCK_RESTRICT_SELF_TSYNC: only this thread, like the seccomp
	// filter.
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); e != 0 {
		return fmt.Errorf("enforcing the Landlock ruleset: %w", e)
	}
	return nil
}
