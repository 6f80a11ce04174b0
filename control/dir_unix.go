//go:build unix

package control

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Dir returns the directory of the caller's control sockets:
// $XDG_RUNTIME_DIR/sandgate when XDG_RUNTIME_DIR is an absolute path (the
// per-user runtime directory, mode 0700, on most Linux desktops), else
// sandgate/control under the user's cache directory ($XDG_CACHE_HOME or
// ~/.cache). It does not create it.
func Dir() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "sandgate"), nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("the control socket directory: neither XDG_RUNTIME_DIR nor a cache directory is set: %w", err)
	}
	return filepath.Join(c, "sandgate", "control"), nil
}

// EnsureDir creates dir (and its missing parents) with mode 0700 and checks
// that it is a real directory (not a symbolic link) owned by the caller that
// no one else may enter: a directory someone else could write to, or
// search, is refused, since the control sockets in it change the policy of
// running sandboxes.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the control socket directory: %w", err)
	}
	return checkDir(dir)
}

// checkDir checks dir as EnsureDir does, without creating it.
func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("the control socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("the control socket directory %s is not a directory (a symbolic link or a file); remove it", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("the control socket directory: its owner cannot be read")
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("the control socket directory %s belongs to uid %d, not to you (uid %d); remove it or set XDG_RUNTIME_DIR to a directory of your own", dir, st.Uid, uid)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("the control socket directory %s has mode %04o: others may reach it; run chmod 700 %s", dir, fi.Mode().Perm(), dir)
	}
	return nil
}
