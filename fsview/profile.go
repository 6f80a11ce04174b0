// Package fsview computes and applies the file system view of a sandboxed
// command: what it may read, what it may write, and what it must not see.
//
// The view is computed in two steps. NewPlan turns a Profile (the mode, the
// workspace, --write, --hide and --unhide paths, the caller's home and
// temporary directory, sandgate's own files) into a Plan: an ordered list of
// mount operations, the writable roots that Landlock allows, and the exact
// list of never-writable paths. Planning only reads the file system (through
// FS), is deterministic and is the same on every OS. On Linux, Apply carries
// a plan out in a mount namespace of the caller's own and NewLandlock turns
// its writable roots into a Landlock ruleset; see apply_linux.go.
//
// The default view (ModeWorkspace):
//   - Everything is readable and nothing is writable (every mount is made
//     read-only, and Landlock refuses writes outside the writable roots),
//     except the writable roots: the workspace, each --write path, a private
//     /tmp, /var/tmp and /dev/shm, a private $TMPDIR, a copy-on-write $HOME
//     (or, with Profile.FreshHome, an empty home of the run's own), and the
//     terminal and null devices.
//   - The workspace, --write paths, the command and sandgate's binary stay
//     visible at their own paths, even under /tmp.
//   - Credential stores (DefaultHidden) and --hide paths read as empty:
//     an empty read-only tmpfs over a directory, an empty read-only file
//     over a file. --unhide makes one path (or everything under it) visible
//     again, read-only.
//   - Never-writable paths (sandgate's own files, the files its resolver
//     reads, shell startup files, git hooks and configuration, and the other
//     files that make code run later, see ShellStartupFiles and CodeFiles)
//     are bound read-only over themselves wherever the command could
//     otherwise write them, and the directories leading to them inside a
//     writable root are pinned (made mount points), so that they can be
//     neither written, replaced, renamed nor removed.
//
// ModeReadonly is the same without a workspace and with the home directory
// read-only (--write paths still add writable roots). ModeHost applies
// nothing.
package fsview

import (
	"fmt"
	"strings"
)

// Mode selects the kind of view.
type Mode int

const (
	// ModeWorkspace (the default): the workspace and --write paths are
	// writable, $HOME is copy-on-write, the rest is read-only.
	ModeWorkspace Mode = iota
	// ModeReadonly: only the private temporary directories (and --write
	// paths) are writable.
	ModeReadonly
	// ModeHost: no file system restriction at all.
	ModeHost
)

// String returns the name used on the command line and in configuration.
func (m Mode) String() string {
	switch m {
	case ModeWorkspace:
		return "workspace"
	case ModeReadonly:
		return "readonly"
	case ModeHost:
		return "host"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "workspace", "readonly" or "host".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{ModeWorkspace, ModeReadonly, ModeHost} {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown file system mode %q (want workspace, readonly or host)", s)
}

// Owner is a user and group that fresh private directories belong to.
type Owner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// Profile is what the view is computed from. Paths must be absolute; a
// leading "~" or "~/" is replaced by Home. Every path is resolved through
// symbolic links while planning.
type Profile struct {
	Mode Mode
	// Workspace is the writable project directory (ModeWorkspace only,
	// required there): the working directory or --workspace.
	Workspace string
	// Write are more writable roots (--write, config filesystem.write);
	// each must exist.
	Write []string
	// Hide are more paths to hide (--hide, config filesystem.deny_read),
	// besides DefaultHidden. Missing ones are ignored.
	Hide []string
	// Unhide are paths made visible again (--unhide, config
	// filesystem.allow_read). Missing ones are ignored.
	Unhide []string
	// Home is the caller's home directory: where the credential stores are
	// hidden, and (ModeWorkspace, no FreshHome) the copy-on-write home.
	// "" when there is none.
	Home string
	// ConfigHome is $XDG_CONFIG_HOME when set ("" = Home/.config).
	ConfigHome string
	// TmpDir is $TMPDIR when set: it gets a private empty tmpfs too.
	TmpDir string
	// FreshHome, when set (the identity backend: the sandbox user's home),
	// gets an empty private tmpfs owned by Owner, writable, instead of
	// the copy-on-write Home.
	FreshHome string
	// Owner owns FreshHome and the private TmpDir (nil: whoever applies
	// the plan, as in the netns backend where the command runs as the
	// caller).
	Owner *Owner
	// ConfigPaths are sandgate's configuration file(s) and directory:
	// never writable, whether they exist or not.
	ConfigPaths []string
	// Executable is the running sandgate binary and Invoked the path it
	// was started by (when different): both stay visible and are never
	// writable.
	Executable, Invoked string
	// AuditFile is the audit log sandgate writes during the run: never
	// writable by the command.
	AuditFile string
	// Command is the command's resolved path: it stays visible.
	Command string
	// Visible are more paths that must stay visible at their own paths
	// even under /tmp (e.g. PATH entries there).
	Visible []string
	// Protect are more never-writable paths.
	Protect []string
}
