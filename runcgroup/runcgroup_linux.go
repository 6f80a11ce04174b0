//go:build linux

package runcgroup

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initCgroupNSIno is the inode number of the initial cgroup namespace
// (PROC_CGROUP_INIT_INO in linux/proc_ns.h).
const initCgroupNSIno = 0xEFFFFFFB

// DefaultParent is the directory, under the cgroup v2 mount, that holds the
// runs' cgroups.
const DefaultParent = "sandgate"

// Group is one run's cgroup.
type Group struct {
	Path  string // its directory
	ID    uint64 // its cgroup id (the directory's inode number)
	Level uint32 // its depth in the cgroup v2 hierarchy (the root is 0)
	dir   *os.File
}

// Create makes a new cgroup for a run, named prefix followed by random hex
// digits, in the directory parent (made if missing) of the cgroup v2
// hierarchy's mount. It needs root.
func Create(parent, prefix string) (*Group, error) {
	if err := checkInitialNamespace(); err != nil {
		return nil, err
	}
	mount, root, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	if parent == "" || strings.Contains(parent, "..") || filepath.IsAbs(parent) {
		return nil, fmt.Errorf("runcgroup: parent %q must be a relative path below the cgroup v2 mount", parent)
	}
	pdir := filepath.Join(mount, parent)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return nil, fmt.Errorf("runcgroup: making %s: %w", pdir, err)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("runcgroup: %w", err)
	}
	path := filepath.Join(pdir, prefix+hex.EncodeToString(b))
	if err := os.Mkdir(path, 0o755); err != nil {
		return nil, fmt.Errorf("runcgroup: making %s: %w", path, err)
	}
	g, err := open(path, mount, root)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return g, nil
}

// open opens the cgroup at path of the hierarchy mounted at mount (whose
// own root in the hierarchy is root).
func open(path, mount, root string) (*Group, error) {
	dir, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("runcgroup: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		dir.Close()
		return nil, fmt.Errorf("runcgroup: stat %s: %w", path, err)
	}
	rel, err := filepath.Rel(mount, path)
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("runcgroup: %w", err)
	}
	return &Group{Path: path, ID: st.Ino, Level: depth(root) + depth(rel), dir: dir}, nil
}

// depth counts the components of a slash-separated path ("/" and "." have
// none).
func depth(p string) uint32 {
	var n uint32
	for _, c := range strings.Split(filepath.ToSlash(p), "/") {
		if c != "" && c != "." {
			n++
		}
	}
	return n
}

// FD is the descriptor of the cgroup's directory, for
// syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD()}. It stays valid
// until Remove.
func (g *Group) FD() int { return int(g.dir.Fd()) }

// Remove kills every process left in the cgroup and removes it.
func (g *Group) Remove() error {
	defer g.dir.Close()
	if err := os.WriteFile(filepath.Join(g.Path, "cgroup.kill"), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("runcgroup: killing the processes of %s: %w", g.Path, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(g.Path)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("runcgroup: removing %s: %w", g.Path, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkInitialNamespace refuses a cgroup namespace other than the initial
// one.
func checkInitialNamespace() error {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/cgroup", &st); err != nil {
		return fmt.Errorf("runcgroup: reading this process's cgroup namespace: %w", err)
	}
	if st.Ino != initCgroupNSIno {
		return errors.New("runcgroup: this process runs in a cgroup namespace of its own (a container?), " +
			"where cgroup depths differ from the kernel's; per-run transparent rules need the initial cgroup namespace")
	}
	return nil
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted, and the
// mount's root within the hierarchy.
func cgroup2Mount() (mount, root string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", fmt.Errorf("runcgroup: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && i >= 5 {
				if strings.Contains(fields[3]+fields[4], `\`) {
					// mountinfo escapes spaces and such; sandgate does not
					// guess at such paths.
					return "", "", fmt.Errorf("runcgroup: the cgroup v2 mount %q has an unusual path", fields[4])
				}
				return fields[4], fields[3], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("runcgroup: reading /proc/self/mountinfo: %w", err)
	}
	return "", "", errors.New("runcgroup: no cgroup v2 hierarchy is mounted")
}
