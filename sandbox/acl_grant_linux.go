//go:build linux

package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Directory grants: an identity run gives the sandbox group rwx on CMD's
// working directory through a named-group entry in its access ACL, and
// takes it back afterwards.
//
// Several runs may share a directory, so a grant is shared too: the first
// run records the directory's previous state (its ACL attribute, or its
// absence, and its mode) in a state file under grantStateDir and applies
// the grant; later runs join it; the last run to leave restores the
// previous state exactly. Each run holds a shared OFD lock on byte 1 of the
// state file for as long as it runs, so "last" is decided by the kernel and
// a run that crashes leaves nothing held. Byte 0 is the mutex that
// serialises joining and leaving. The state survives reboots, so a grant
// left by a crashed run is taken back by the last run that next uses the
// directory.

// grantStateDir holds one state file per granted directory (a variable for
// tests).
var grantStateDir = "/var/lib/sandgate/dir-grants"

// grantState is what the first run records about a directory it granted.
type grantState struct {
	Path    string `json:"path"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	GID     uint32 `json:"gid"`
	HadACL  bool   `json:"had_acl"`
	PrevACL []byte `json:"prev_acl,omitempty"`
	// PrevMode is the directory's permission bits before the grant (the
	// group bits change with an ACL's mask).
	PrevMode uint32 `json:"prev_mode"`
	// Wrote is the attribute the grant wrote: restoring is exact only when
	// nobody has changed the ACL since.
	Wrote []byte `json:"wrote"`
	// Keep: a run asked for the grant to stay (--keep-dir-grant).
	Keep bool `json:"keep,omitempty"`
}

// dirGrant is one run's share of a directory grant.
type dirGrant struct {
	path  string
	state *os.File // nil: nothing was granted (the access was already there)
}

// OFD lock ranges in a state file.
const (
	grantMutexByte = 0
	grantUsersByte = 1
)

func ofdLock(f *os.File, typ int16, at int64, wait bool) error {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: at, Len: 1}
	cmd := unix.F_OFD_SETLK
	if wait {
		cmd = unix.F_OFD_SETLKW
	}
	for {
		err := unix.FcntlFlock(f.Fd(), cmd, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}

// openDir opens path (absolute, without symlinks) as a directory, refusing
// symlinks in any component, so that a path swapped under us cannot point
// the grant at another directory.
func openDir(path string) (int, *unix.Stat_t, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) { // before Linux 5.6: the last component only
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	return fd, &st, nil
}

// grantDir gives group gid rwx on the directory dir (an absolute path with
// no symlinks) for the life of the returned grant, unless user uid in group
// gid already has rwx there. Call release when the run ends.
func grantDir(dir string, uid, gid uint32) (*dirGrant, error) {
	fd, st, err := openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(fd)
	a, _, err := currentACL(fd, st)
	if err != nil {
		return nil, fmt.Errorf("reading the ACL of %s: %w", dir, err)
	}
	name := filepath.Join(grantStateDir, fmt.Sprintf("%x-%x.json", st.Dev, st.Ino))
	if a.allows(st.Uid, st.Gid, uid, gid, aclRWX) {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return &dirGrant{path: dir}, nil // nothing to grant, no grant to join
		}
	}

	if err := os.MkdirAll(grantStateDir, 0o700); err != nil {
		return nil, fmt.Errorf("recording the grant on %s: %w", dir, err)
	}
	sf, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("recording the grant on %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			sf.Close()
		}
	}()
	if err := ofdLock(sf, unix.F_WRLCK, grantMutexByte, true); err != nil {
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	defer ofdLock(sf, unix.F_UNLCK, grantMutexByte, false)
	// Never contended: a leaving run tests this byte only under the mutex.
	if err := ofdLock(sf, unix.F_RDLCK, grantUsersByte, true); err != nil {
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	prev, err := readGrantState(sf)
	if err != nil {
		return nil, err
	}
	// Again under the mutex: another run may have granted or left.
	cur, raw, err := currentACL(fd, st)
	if err != nil {
		return nil, fmt.Errorf("reading the ACL of %s: %w", dir, err)
	}
	if prev == nil && cur.allows(st.Uid, st.Gid, uid, gid, aclRWX) {
		return &dirGrant{path: dir}, nil
	}
	next, changed := cur.withGroupGrant(gid, aclRWX)
	if !changed {
		if prev == nil {
			// An unrecorded entry (kept by an earlier run, or made by
			// hand): not ours to take back.
			return &dirGrant{path: dir}, nil
		}
		ok = true
		return &dirGrant{path: dir, state: sf}, nil // joined a live grant
	}
	s := prev
	if s == nil {
		s = &grantState{Path: dir, Dev: st.Dev, Ino: st.Ino, GID: gid, HadACL: raw != nil, PrevACL: raw, PrevMode: st.Mode & 0o7777}
	}
	s.Wrote = next.encode()
	// The record first: a crash between the two leaves a record of a grant
	// that may not exist, which restoring handles.
	if err := writeGrantState(sf, s); err != nil {
		return nil, err
	}
	if err := unix.Fsetxattr(fd, aclXattr, s.Wrote, 0); err != nil {
		if prev == nil {
			_ = sf.Truncate(0)
		}
		return nil, fmt.Errorf("granting the sandbox group access to %s (POSIX ACL): %w", dir, err)
	}
	ok = true
	return &dirGrant{path: dir, state: sf}, nil
}

// release gives up this run's share of the grant. The last run to leave
// restores the directory's previous ACL and mode, unless keep is set (by
// this run or an earlier one that shared the grant). logf reports a grant
// that could only be partly taken back.
func (g *dirGrant) release(keep bool, logf func(string, ...any)) error {
	if g == nil || g.state == nil {
		return nil
	}
	sf := g.state
	g.state = nil
	defer sf.Close() // drops every lock this run holds
	if err := ofdLock(sf, unix.F_WRLCK, grantMutexByte, true); err != nil {
		return fmt.Errorf("locking the grant record of %s: %w", g.path, err)
	}
	s, err := readGrantState(sf)
	if err != nil || s == nil {
		return err
	}
	// Converting our shared lock to an exclusive one succeeds only when no
	// other run holds the grant.
	if err := ofdLock(sf, unix.F_WRLCK, grantUsersByte, false); err != nil {
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("locking the grant record of %s: %w", g.path, err)
		}
		if keep && !s.Keep {
			s.Keep = true
			return writeGrantState(sf, s)
		}
		return nil
	}
	if !keep && !s.Keep {
		if err := restoreDir(s, logf); err != nil {
			return err
		}
	}
	return sf.Truncate(0)
}

// restoreDir puts back the directory's ACL and mode as recorded in s.
func restoreDir(s *grantState, logf func(string, ...any)) error {
	fd, st, err := openDir(s.Path)
	if errors.Is(err, unix.ENOENT) {
		return nil // gone: nothing to take back
	}
	if err != nil {
		return fmt.Errorf("taking back the grant on %s: %w", s.Path, err)
	}
	defer unix.Close(fd)
	if st.Dev != s.Dev || st.Ino != s.Ino {
		logf("the directory granted to the sandbox group, %s, was replaced during the run; its replacement is left alone", s.Path)
		return nil
	}
	raw, err := getACL(fd)
	if err != nil {
		return fmt.Errorf("taking back the grant on %s: %w", s.Path, err)
	}
	if sameBytes(raw, s.Wrote) {
		if s.HadACL {
			err = unix.Fsetxattr(fd, aclXattr, s.PrevACL, 0)
		} else {
			err = unix.Fremovexattr(fd, aclXattr)
			if errors.Is(err, unix.ENODATA) {
				err = nil
			}
		}
		if err == nil {
			// The ACL's mask became the mode's group bits: put them back.
			err = unix.Fchmod(fd, st.Mode&^0o777|s.PrevMode&0o777)
		}
		if err != nil {
			return fmt.Errorf("taking back the grant on %s: %w", s.Path, err)
		}
		return nil
	}
	// Someone changed the ACL during the run: remove only our entry.
	if raw == nil {
		return nil
	}
	cur, err := parseACL(raw)
	if err != nil {
		return fmt.Errorf("taking back the grant on %s: %w", s.Path, err)
	}
	next, removed := cur.withoutGroup(s.GID)
	if !removed {
		return nil
	}
	if err := unix.Fsetxattr(fd, aclXattr, next.encode(), 0); err != nil {
		return fmt.Errorf("taking back the grant on %s: %w", s.Path, err)
	}
	logf("the ACL of %s changed during the run; removed only the sandbox group's entry (the mask stays as it is now)", s.Path)
	return nil
}

func readGrantState(f *os.File) (*grantState, error) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	var s grantState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("grant record %s is corrupt (remove it after checking the ACL of the directory it names): %w", f.Name(), err)
	}
	return &s, nil
}

func writeGrantState(f *os.File, s *grantState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return f.Sync()
}
