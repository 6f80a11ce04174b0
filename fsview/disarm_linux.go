package fsview

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Disarm makes the file p non-executable (chmod a-x), the reversible way
// to keep a hook the command planted from running. It follows no symbolic
// link: every directory on the way and the file itself are opened without
// following one (O_NOFOLLOW), and the mode is changed through the opened
// file (/proc/self/fd), not through its name. It refuses a file that is
// not a regular file, not owned by one of uids, or that has other hard
// links (its other names could be the user's own programs).
func Disarm(p string, uids ...int) error {
	fd, err := openNoFollow(p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("%s: %w", p, errNotRegular)
	case !slices.Contains(uids, int(st.Uid)):
		return fmt.Errorf("%s: owned by uid %d, not by the run", p, st.Uid)
	case st.Nlink != 1:
		return fmt.Errorf("%s: has %d hard links", p, st.Nlink)
	}
	mode := st.Mode & 0o7777 &^ 0o111
	if err := unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode); err != nil {
		return fmt.Errorf("chmod a-x %s: %w", p, err)
	}
	return nil
}

// openNoFollow opens the absolute path p as an O_PATH descriptor, one
// component at a time from "/", following no symbolic link (a link on the
// way fails; a final link is opened itself).
func openNoFollow(p string) (int, error) {
	if !path.IsAbs(p) {
		return -1, fmt.Errorf("%s: not an absolute path", p)
	}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /: %w", err)
	}
	clean := strings.TrimPrefix(path.Clean(p), "/")
	if clean == "" {
		return fd, nil
	}
	parts := strings.Split(clean, "/")
	for i, c := range parts {
		flags := unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i < len(parts)-1 {
			flags |= unix.O_DIRECTORY
		}
		next, err := unix.Openat(fd, c, flags, 0)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("%s: %s: %w", p, c, err)
		}
		fd = next
	}
	return fd, nil
}
