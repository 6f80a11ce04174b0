//go:build linux

package fsview

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Apply carries out the plan's mount operations in the calling process's
// mount namespace. The caller must be alone in a mount namespace of its
// own with CAP_SYS_ADMIN over it: the init of the netns backend (in its
// user namespace) or a root process in a new mount namespace (identity
// backend). Apply first makes every mount a slave (nothing it does can
// propagate to the host), then mounts what the plan says, with the new
// mount API (open_tree, move_mount, fsopen, fsmount, mount_setattr: Linux
// 5.12 or later). A plan of ModeHost does nothing.
//
// A kernel that lacks a feature the plan needs gives an error wrapping
// ErrUnavailable (an *UnavailableError); on any error the namespace is
// left half set up and must not be used to run the command.
func Apply(p *Plan) error {
	if p.Unrestricted() {
		return nil
	}
	a := &applier{trees: map[int]int{}, scratch: -1}
	defer a.close()
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("fsview: making every mount a slave: %w", err)
	}
	for i := range p.Ops {
		if err := a.do(&p.Ops[i]); err != nil {
			return err
		}
	}
	return nil
}

// applier holds the detached mount trees between their capture and use.
type applier struct {
	trees   map[int]int // ID -> mount fd
	scratch int         // the scratch tmpfs (an attached mount's fd)
	scrPath string
}

func (a *applier) close() {
	for _, fd := range a.trees {
		unix.Close(fd)
	}
	if a.scratch >= 0 {
		unix.Close(a.scratch)
	}
}

// opError wraps err with the operation; a missing system call becomes an
// UnavailableError.
func opError(o *Op, err error) error {
	if errors.Is(err, unix.ENOSYS) {
		return &UnavailableError{What: fmt.Sprintf("%s %s (the new mount API)", o.Kind, o.Path), Hint: "the file system view needs Linux 5.12 or later; use --fs host to run without it", Err: err}
	}
	what := string(o.Kind)
	if o.Path != "" {
		what += " " + o.Path
	}
	if o.Why != "" {
		what += " (" + o.Why + ")"
	}
	return fmt.Errorf("fsview: %s: %w", what, err)
}

func (a *applier) do(o *Op) error {
	var err error
	switch o.Kind {
	case OpCapture:
		var fd int
		if fd, err = cloneTree(unix.AT_FDCWD, o.Path); err == nil {
			a.trees[o.ID] = fd
		}
	case OpReadOnlyAll:
		err = unix.MountSetattr(unix.AT_FDCWD, "/", unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	case OpScratch:
		err = a.mountScratch(o.Path)
	case OpOverlay:
		return a.overlay(o)
	case OpTmpfs:
		err = mountTmpfs(o)
	case OpEmptyFile:
		var fd int
		if fd, err = cloneTree(a.scratch, "empty"); err == nil {
			err = attach(fd, o.Path, true)
		}
	case OpBind:
		fd, ok := a.trees[o.From]
		if !ok {
			return opError(o, fmt.Errorf("no mount tree #%d", o.From))
		}
		delete(a.trees, o.From)
		err = attach(fd, o.Path, o.ReadOnly)
	case OpPin, OpProtect:
		var fd int
		if fd, err = cloneTree(unix.AT_FDCWD, o.Path); err == nil {
			err = attach(fd, o.Path, o.Kind == OpProtect)
		}
	default:
		err = errors.New("unknown operation")
	}
	if err != nil {
		return opError(o, err)
	}
	return nil
}

// cloneTree clones the mount tree at name (relative to dirfd), with every
// mount below it, as a detached tree.
func cloneTree(dirfd int, name string) (int, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_RECURSIVE | unix.AT_SYMLINK_NOFOLLOW)
	fd, err := unix.OpenTree(dirfd, name, flags)
	if err != nil {
		return -1, fmt.Errorf("open_tree: %w", err)
	}
	return fd, nil
}

// attach mounts the detached tree fd at target (read-only, recursively,
// when ro) and closes fd.
func attach(fd int, target string, ro bool) error {
	defer unix.Close(fd)
	if ro {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("mount_setattr read-only: %w", err)
		}
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// newTmpfs makes a detached tmpfs (nosuid, nodev) with the given options.
func newTmpfs(opts map[string]string, ro bool) (int, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	for k, v := range opts {
		if err := unix.FsconfigSetString(fsfd, k, v); err != nil {
			return -1, fmt.Errorf("tmpfs option %s=%s: %w", k, v, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("creating a tmpfs: %w", err)
	}
	attrs := unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	if ro {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	fd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, fmt.Errorf("fsmount tmpfs: %w", err)
	}
	return fd, nil
}

// mountTmpfs mounts OpTmpfs o: a fresh tmpfs with its nodes created before
// it becomes read-only (if it does) and is attached.
func mountTmpfs(o *Op) error {
	opts := map[string]string{"mode": fmt.Sprintf("%o", o.Mode)}
	if o.Owner != nil {
		opts["uid"] = fmt.Sprint(o.Owner.UID)
		opts["gid"] = fmt.Sprint(o.Owner.GID)
	}
	fd, err := newTmpfs(opts, false)
	if err != nil {
		return err
	}
	for _, n := range o.Nodes {
		rel, ok := strings.CutPrefix(n.Path, strings.TrimSuffix(o.Path, "/")+"/")
		if !ok {
			unix.Close(fd)
			return fmt.Errorf("mount point %s is not below %s", n.Path, o.Path)
		}
		if err := makeNode(fd, rel, n); err != nil {
			unix.Close(fd)
			return fmt.Errorf("creating the mount point %s: %w", n.Path, err)
		}
	}
	return attach(fd, o.Path, o.ReadOnly)
}

// makeNode creates node n at rel below the directory fd, with any missing
// parent directories (mode 0755).
func makeNode(fd int, rel string, n Node) error {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		if err := unix.Mkdirat(fd, strings.Join(parts[:i], "/"), 0o755); err != nil && err != unix.EEXIST {
			return err
		}
	}
	var err error
	switch n.Type {
	case NodeDir:
		err = unix.Mkdirat(fd, rel, 0o755)
	case NodeFile:
		err = unix.Mknodat(fd, rel, unix.S_IFREG|0o644, 0)
	case NodeSymlink:
		err = unix.Symlinkat(n.Target, fd, rel)
	default:
		return fmt.Errorf("unknown node type %q", n.Type)
	}
	if err == unix.EEXIST {
		return nil
	}
	return err
}

// mountScratch mounts the scratch tmpfs at p, with an empty read-only file
// (the source of OpEmptyFile) and the overlay's directories.
func (a *applier) mountScratch(p string) error {
	fd, err := newTmpfs(map[string]string{"mode": "700"}, false)
	if err != nil {
		return err
	}
	for _, d := range []string{"lower", "upper", "work"} {
		if err := unix.Mkdirat(fd, d, 0o755); err != nil {
			unix.Close(fd)
			return fmt.Errorf("scratch directory %s: %w", d, err)
		}
	}
	if err := unix.Mknodat(fd, "empty", unix.S_IFREG|0o444, 0); err != nil {
		unix.Close(fd)
		return fmt.Errorf("scratch empty file: %w", err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		unix.Close(fd)
		return fmt.Errorf("move_mount: %w", err)
	}
	a.scratch, a.scrPath = fd, p
	return nil
}

// overlay builds OpOverlay o: the captured lower tree is attached in the
// scratch tmpfs, and the overlay (upper and work directories there too)
// is kept detached as o.ID.
func (a *applier) overlay(o *Op) error {
	unavailable := func(err error) error {
		return &UnavailableError{
			What: "the copy-on-write home (overlayfs)",
			Hint: "unprivileged overlayfs needs Linux 5.11 or later and a home on a file system overlayfs accepts as a lower layer; use --fs readonly (a read-only home) or --fs host",
			Err:  err,
		}
	}
	lower, ok := a.trees[o.From]
	if !ok || a.scratch < 0 {
		return opError(o, fmt.Errorf("no lower tree #%d or no scratch tmpfs", o.From))
	}
	delete(a.trees, o.From)
	if err := unix.MoveMount(lower, "", a.scratch, "lower", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		unix.Close(lower)
		return opError(o, fmt.Errorf("attaching the lower layer: %w", err))
	}
	unix.Close(lower)
	userxattr := inUserNamespace()
	fd, err := mountOverlay(a.scrPath, userxattr)
	if err != nil && userxattr {
		// Kernels whose tmpfs has no user.* extended attributes (before
		// 6.6) refuse userxattr; overlayfs then works without them.
		fd, err = mountOverlay(a.scrPath, false)
	}
	if err != nil {
		return unavailable(err)
	}
	a.trees[o.ID] = fd
	return nil
}

// mountOverlay makes the detached overlay of dir/lower with upper and work
// directories in dir.
func mountOverlay(dir string, userxattr bool) (int, error) {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	for _, kv := range [][2]string{{"lowerdir", path.Join(dir, "lower")}, {"upperdir", path.Join(dir, "upper")}, {"workdir", path.Join(dir, "work")}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return -1, fmt.Errorf("overlay option %s: %w", kv[0], err)
		}
	}
	if userxattr {
		if err := unix.FsconfigSetFlag(fsfd, "userxattr"); err != nil {
			return -1, fmt.Errorf("overlay option userxattr: %w", err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("creating the overlay: %w", err)
	}
	fd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, fmt.Errorf("fsmount overlay: %w", err)
	}
	return fd, nil
}

// inUserNamespace reports whether this process is in a user namespace
// other than the initial one (whose uid map is the whole range).
func inUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}
