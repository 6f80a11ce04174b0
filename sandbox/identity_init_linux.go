//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// identityInit is what the init of an identity run needs besides
// initConfig: who CMD runs as.
type identityInit struct {
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	User  string `json:"user"`  // the sandbox user's name, for messages
	Group string `json:"group"` // the sandbox group's name, for messages
}

// setupAndStartIdentity is the init of an identity run: PID 1 of new PID,
// mount, IPC and UTS namespaces, started by a root parent in the host's
// user and network namespaces. It mounts the namespace's /proc, turns the
// thread that starts CMD into the sandbox user with nothing else, checks
// that this user can reach CMD's directory and starts CMD. The environment
// (with the proxy variables) was made by the parent.
func setupAndStartIdentity(cfg initConfig, args []string) (int, error) {
	id := cfg.Identity
	if id.UID <= 0 || id.GID <= 0 {
		return 0, &setupError{msg: fmt.Sprintf("sandbox init: refusing to run CMD as uid %d, gid %d", id.UID, id.GID)}
	}
	// Mounts made here must never propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return 0, setupErr(err, "making the sandbox's mounts private")
	}
	// A /proc of the new PID namespace: CMD sees only the sandbox's processes.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return 0, setupErr(err, "mounting /proc for the sandbox's PID namespace")
	}
	// CMD must not be able to inspect or ptrace the init.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return 0, setupErr(err, "making the sandbox init non-dumpable")
	}
	if err := becomeSandboxUser(id, cfg.AllowUnix); err != nil {
		return 0, err
	}
	// From here on this thread's file system checks are the sandbox user's.
	if err := checkReachable(cfg.Dir, id); err != nil {
		return 0, err
	}
	env := os.Environ()
	path, err := lookPath(args[0], env, cfg.Dir)
	if err != nil {
		return 0, err
	}
	return startCommand(path, args, env, cfg.Dir, cfg.PTY)
}

// becomeSandboxUser turns the calling thread (locked; root with every
// capability) into the sandbox user: no_new_privs, an empty bounding set,
// locked secure bits, no supplementary groups, the sandbox user's uid and
// the sandbox group's gid (real, effective, saved and file system), no
// capabilities, the Landlock scopes and the seccomp filter. Only this thread
// changes (raw system calls): the rest of the init stays root to reap and
// forward signals, and CMD, started from this thread, inherits all of it.
func becomeSandboxUser(id *identityInit, allowUnix bool) error {
	return lockDownThread(allowUnix, id)
}

// switchToSandboxUser drops the supplementary groups and takes the sandbox
// user's uid and the sandbox group's gid on the calling thread. The locked
// secure bits (SECBIT_NO_SETUID_FIXUP) keep the capabilities this needs
// across the switch, until lockDownThread removes them all.
func switchToSandboxUser(id *identityInit) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return setupErr(e, "dropping the supplementary groups")
	}
	gid, uid := uintptr(id.GID), uintptr(id.UID)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, gid, gid, gid); e != 0 {
		return setupErr(e, "switching to group %s (gid %d)", id.Group, id.GID)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uid, uid, uid); e != 0 {
		return setupErr(e, "switching to user %s (uid %d)", id.User, id.UID)
	}
	return nil
}

// checkReachable checks, as the sandbox user, that every directory from /
// down to dir can be searched. sandgate grants access to the working
// directory itself, never to its parents: a parent that shuts the sandbox
// user out is named, with what to do about it.
func checkReachable(dir string, id *identityInit) error {
	if dir == "" {
		return nil
	}
	clean := filepath.Clean(dir)
	var path []string
	for p := clean; ; p = filepath.Dir(p) {
		path = append(path, p)
		if p == "/" || p == "." {
			break
		}
	}
	for i := len(path) - 1; i >= 0; i-- {
		p := path[i]
		err := unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS)
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
			return &setupError{msg: fmt.Sprintf("the sandbox user %s cannot reach the working directory %s: %s: %v", id.User, clean, p, err)}
		}
		owner := ""
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			owner = fmt.Sprintf(" (owner uid %d, group gid %d, mode %04o)", st.Uid, st.Gid, st.Mode&0o7777)
		}
		if p == clean {
			return &setupError{msg: fmt.Sprintf("the sandbox user %s cannot enter the working directory %s%s even after sandgate's grant (a file system without POSIX ACLs?)", id.User, clean, owner)}
		}
		return &setupError{msg: fmt.Sprintf("the sandbox user %s cannot reach the working directory %s: %s is not searchable by it%s; "+
			"sandgate grants access to the working directory only, never to its parents; let the sandbox group through with `setfacl -m g:%s:x %s`, or run from a directory it can reach",
			id.User, clean, p, owner, id.Group, shellWord(p))}
	}
	return nil
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
