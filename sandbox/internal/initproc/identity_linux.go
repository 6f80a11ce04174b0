//go:build linux

package initproc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// setupAndStartIdentity is the init of an identity run: PID 1 of new PID,
// mount, IPC and UTS namespaces, started by a root parent in the host's
// user and network namespaces. It mounts the namespace's /proc, turns the
// thread that starts CMD into the sandbox user with nothing else, checks
// that this user can reach CMD's directory and starts CMD. The environment
// (with the proxy variables) was made by the parent.
func setupAndStartIdentity(cfg initproto.Config, args []string) (int, error) {
	id := cfg.Identity
	if id.UID <= 0 || id.GID <= 0 {
		return 0, &setupError{msg: fmt.Sprintf("sandbox init: refusing to run CMD as uid %d, gid %d", id.UID, id.GID)}
	}
	// The allowed unix sockets first: the view may hide them.
	gate, err := openGate(cfg.UnixSockets)
	if err != nil {
		return 0, err
	}
	// Mounts made here must never propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return 0, setupErr(err, "making the sandbox's mounts private")
	}
	// The replacement files first: their sources lie where the view may
	// put a private /tmp; a bind made now stays in the view.
	if err := applyReplacements(cfg.Replace); err != nil {
		return 0, err
	}
	view, err := applyView(cfg)
	if err != nil {
		return 0, err
	}
	// A /proc of the new PID namespace: CMD sees only the sandbox's processes.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return 0, setupErr(err, "mounting /proc for the sandbox's PID namespace")
	}
	// CMD must not be able to inspect or ptrace the init.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return 0, setupErr(err, "making the sandbox init non-dumpable")
	}
	// The thread becomes the sandbox user with nothing else: no
	// supplementary groups, no capabilities, the Landlock scopes and the
	// seccomp filter. Only this thread changes (raw system calls): the rest
	// of the init stays root to reap and forward signals, and CMD, started
	// from this thread, inherits all of it.
	ll, err := viewLandlock(view) // as root: every writable root can be opened
	if err != nil {
		return 0, err
	}
	defer ll.Close()
	if err := lockDown(cfg.AllowUnix, gate, id, ll); err != nil {
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

// checkReachable checks, as the sandbox user, that every directory from /
// down to dir can be searched. sandgate grants access to the working
// directory itself, never to its parents: a parent that shuts the sandbox
// user out is named, with what to do about it.
func checkReachable(dir string, id *initproto.Identity) error {
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
