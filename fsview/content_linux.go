//go:build linux

package fsview

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// BindContent mounts a read-only file holding content over the file
// target, in the calling process's mount namespace (which must be the
// caller's own, as for Apply). It is how the sandbox gives the command
// sandgate's own version of a file after Apply (e.g. the /etc/hosts and
// /etc/resolv.conf of a DNS stub): the file lives in a tmpfs of its own
// that nothing else mounts, so the command can neither write it nor reach
// its original. target must exist and not be a directory.
func BindContent(target string, content []byte) error {
	fd, err := newTmpfs(map[string]string{"mode": "755"}, false)
	if err != nil {
		return fmt.Errorf("fsview: a file over %s: %w", target, err)
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, "content", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return fmt.Errorf("fsview: a file over %s: %w", target, err)
	}
	for b := content; len(b) > 0; {
		n, err := unix.Write(f, b)
		if err != nil {
			unix.Close(f)
			return fmt.Errorf("fsview: writing the file over %s: %w", target, err)
		}
		b = b[n:]
	}
	unix.Close(f)
	tree, err := cloneTree(fd, "content")
	if err != nil {
		return fmt.Errorf("fsview: a file over %s: %w", target, err)
	}
	if err := attach(tree, target, true); err != nil {
		return fmt.Errorf("fsview: mounting a file over %s: %w", target, err)
	}
	return nil
}
