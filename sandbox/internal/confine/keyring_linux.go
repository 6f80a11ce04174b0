//go:build linux

package confine

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// JoinSessionKeyring gives the calling thread a new, empty, anonymous
// session keyring (keyctl JOIN_SESSION_KEYRING with no name), so that the
// command starts without the caller's session keyring and the keys in it:
// the keys a process possesses are those reachable from its thread,
// process and session keyrings, and the new thread and process keyrings
// are created empty on demand. The user and user-session keyrings (shared
// by every process of the uid) stay out of reach through the seccomp
// filter (keyringRules). LockDown calls it after the uid change, so that
// the keyring belongs to the user the command runs as.
func JoinSessionKeyring() error {
	// unix.KeyctlJoinSessionKeyring passes a name even when empty (a
	// keyring named ""): the anonymous keyring needs a NULL name.
	if _, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); e != 0 {
		return fmt.Errorf("joining a new session keyring: %w", e)
	}
	return nil
}
