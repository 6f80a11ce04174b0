//go:build linux

package dirgrant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A record file is named after the directory's device and inode. Byte 0 of
// it is the mutex that serialises joining, leaving and repairing; every
// run of the grant holds a shared OFD lock on byte 1 for as long as it
// runs, so "last" is decided by the kernel and a run that dies leaves
// nothing held. Records are only ever unlinked under the mutex with byte 1
// held exclusively, and a run that locked a record that has since been
// unlinked opens it again.

// record is what the first run records about a directory it granted.
type record struct {
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

// Grant is one run's share of a directory grant.
type Grant struct {
	path  string
	state *os.File // nil: nothing was granted (the access was already there)
}

// Recorded reports whether the run holds a recorded grant (false when the
// sandbox user had the access already, or after Release).
func (g *Grant) Recorded() bool { return g != nil && g.state != nil }

// OFD lock ranges in a record file.
const (
	mutexByte = 0
	usersByte = 1
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

// busy reports whether a lock error says another holder has the range.
func busy(err error) bool { return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) }

// openDir opens path (absolute, without symlinks) as a directory, refusing
// symlinks in any component, so that a path swapped under us cannot point
// the grant (or its restoring) at another directory.
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

// getACL returns the raw access ACL attribute of the open file fd, nil when
// it has none.
func getACL(fd int) ([]byte, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Fgetxattr(fd, XattrName, buf)
		switch {
		case errors.Is(err, unix.ENODATA):
			return nil, nil
		case errors.Is(err, unix.ERANGE) && size < 1<<20:
			continue
		case err != nil:
			return nil, err
		}
		return buf[:n], nil
	}
}

// currentACL returns fd's access ACL: the stored one, or the one its mode
// bits amount to, and the stored attribute (nil: none).
func currentACL(fd int, st *unix.Stat_t) (ACL, []byte, error) {
	raw, err := getACL(fd)
	if err != nil {
		return nil, nil, err
	}
	if raw == nil {
		return FromMode(st.Mode), nil, nil
	}
	a, err := ParseACL(raw)
	if err != nil {
		return nil, nil, err
	}
	return a, raw, nil
}

// openRecord opens (creating it when create is set) the record file name
// and takes its mutex. A record unlinked between the open and the lock is
// opened again. It returns fs.ErrNotExist when there is no record and
// create is not set.
func openRecord(name string, create bool) (*os.File, error) {
	flags := os.O_RDWR | syscall.O_NOFOLLOW | syscall.O_CLOEXEC
	if create {
		flags |= os.O_CREATE
	}
	for range 8 {
		f, err := os.OpenFile(name, flags, 0o600)
		if err != nil {
			return nil, err
		}
		if err := ofdLock(f, unix.F_WRLCK, mutexByte, true); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", name, err)
		}
		if st.Nlink > 0 {
			return f, nil
		}
		f.Close() // repaired and removed meanwhile
		if !create {
			return nil, fs.ErrNotExist
		}
	}
	return nil, fmt.Errorf("locking %s: it keeps being replaced", name)
}

// Grant gives the sandbox group to.GID rwx on the directory dir (an
// absolute path with no symlinks) for the life of the returned grant,
// unless user to.UID in that group already has rwx there. Call Release
// when the run ends.
func (r Records) Grant(dir string, to Grantee) (*Grant, error) {
	fd, st, err := openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(fd)
	a, _, err := currentACL(fd, st)
	if err != nil {
		return nil, fmt.Errorf("reading the ACL of %s: %w", dir, err)
	}
	name := filepath.Join(r.dir(), fmt.Sprintf("%x-%x.json", st.Dev, st.Ino))
	if a.Allows(st.Uid, st.Gid, to.UID, to.GID, PermRWX) {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return &Grant{path: dir}, nil // nothing to grant, no grant to join
		}
	}

	if err := os.MkdirAll(r.dir(), 0o700); err != nil {
		return nil, fmt.Errorf("recording the grant on %s: %w", dir, err)
	}
	sf, err := openRecord(name, true)
	if err != nil {
		return nil, fmt.Errorf("recording the grant on %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			sf.Close()
		}
	}()
	defer ofdLock(sf, unix.F_UNLCK, mutexByte, false)
	// Never contended: a leaving run tests this byte only under the mutex.
	if err := ofdLock(sf, unix.F_RDLCK, usersByte, true); err != nil {
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	prev, err := readRecord(sf)
	if err != nil {
		return nil, err
	}
	// Again under the mutex: another run may have granted or left.
	cur, raw, err := currentACL(fd, st)
	if err != nil {
		return nil, fmt.Errorf("reading the ACL of %s: %w", dir, err)
	}
	if prev == nil && cur.Allows(st.Uid, st.Gid, to.UID, to.GID, PermRWX) {
		return &Grant{path: dir}, nil
	}
	next, changed := cur.WithGroupGrant(to.GID, PermRWX)
	if !changed {
		if prev == nil {
			// An unrecorded entry (kept by an earlier run, or made by
			// hand): not ours to take back.
			return &Grant{path: dir}, nil
		}
		ok = true
		return &Grant{path: dir, state: sf}, nil // joined a live grant
	}
	s := prev
	if s == nil {
		s = &record{Path: dir, Dev: st.Dev, Ino: st.Ino, GID: to.GID, HadACL: raw != nil, PrevACL: raw, PrevMode: st.Mode & 0o7777}
	}
	s.Wrote = next.Encode()
	// The record first: a crash between the two leaves a record of a grant
	// that may not exist, which restoring handles.
	if err := writeRecord(sf, s); err != nil {
		return nil, err
	}
	if err := unix.Fsetxattr(fd, XattrName, s.Wrote, 0); err != nil {
		if prev == nil {
			_ = sf.Truncate(0)
		}
		return nil, fmt.Errorf("granting the sandbox group access to %s (POSIX ACL): %w", dir, err)
	}
	ok = true
	return &Grant{path: dir, state: sf}, nil
}

// Release gives up this run's share of the grant. The last run to leave
// restores the directory's previous ACL and mode, unless keep is set (by
// this run or an earlier one that shared the grant). logf reports a grant
// that could only be partly taken back (nil: not reported). Releasing
// twice, or a nil grant, does nothing.
func (g *Grant) Release(keep bool, logf func(string, ...any)) error {
	if g == nil || g.state == nil {
		return nil
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	sf := g.state
	g.state = nil
	defer sf.Close() // drops every lock this run holds
	if err := ofdLock(sf, unix.F_WRLCK, mutexByte, true); err != nil {
		return fmt.Errorf("locking the grant record of %s: %w", g.path, err)
	}
	s, err := readRecord(sf)
	if err != nil || s == nil {
		return err
	}
	// Converting our shared lock to an exclusive one succeeds only when no
	// other run holds the grant.
	if err := ofdLock(sf, unix.F_WRLCK, usersByte, false); err != nil {
		if !busy(err) {
			return fmt.Errorf("locking the grant record of %s: %w", g.path, err)
		}
		if keep && !s.Keep {
			s.Keep = true
			return writeRecord(sf, s)
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
func restoreDir(s *record, logf func(string, ...any)) error {
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
	if bytes.Equal(raw, s.Wrote) {
		if s.HadACL {
			err = unix.Fsetxattr(fd, XattrName, s.PrevACL, 0)
		} else {
			err = unix.Fremovexattr(fd, XattrName)
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
	cur, err := ParseACL(raw)
	if err != nil {
		return fmt.Errorf("taking back the grant on %s: %w", s.Path, err)
	}
	next, removed := cur.WithoutGroup(s.GID)
	if !removed {
		return nil
	}
	if err := unix.Fsetxattr(fd, XattrName, next.Encode(), 0); err != nil {
		return fmt.Errorf("taking back the grant on %s: %w", s.Path, err)
	}
	logf("the ACL of %s changed during the run; removed only the sandbox group's entry (the mask stays as it is now)", s.Path)
	return nil
}

func readRecord(f *os.File) (*record, error) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	var s record
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("grant record %s is corrupt (remove it after checking the ACL of the directory it names): %w", f.Name(), err)
	}
	return &s, nil
}

func writeRecord(f *os.File, s *record) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", f.Name(), err)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return f.Sync()
}

// Leftovers returns the recorded grants that no run holds. It changes
// nothing. No records directory means no leftovers.
func (r Records) Leftovers() ([]Leftover, error) {
	var out []Leftover
	err := r.eachRecord(func(name string, f *os.File) error {
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: usersByte, Len: 1}
		if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
			return fmt.Errorf("probing %s: %w", name, err)
		}
		if lk.Type != unix.F_UNLCK {
			return nil // a run holds it
		}
		s, err := readRecord(f)
		if err != nil || s == nil {
			return err
		}
		out = append(out, Leftover{Dir: s.Path, Record: name, Kept: s.Keep})
		return nil
	})
	return out, err
}

// Repair takes back every recorded grant that no run holds: it restores
// the directory's ACL and mode exactly as recorded (only the sandbox
// group's entry when the ACL changed since; nothing when the directory is
// gone or was replaced, or when a run asked to keep the grant), never
// following a symlink, and removes the record. Grants that runs hold are
// left alone. It returns what it repaired; a record it could not repair is
// kept, and named in the error, for a later Repair. logf (nil: not
// reported) says when a grant could only be partly taken back.
func (r Records) Repair(logf func(string, ...any)) ([]Leftover, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var out []Leftover
	err := r.eachRecord(func(name string, f *os.File) error {
		if err := ofdLock(f, unix.F_WRLCK, usersByte, false); err != nil {
			if busy(err) {
				return nil // a run holds it
			}
			return fmt.Errorf("locking %s: %w", name, err)
		}
		s, err := readRecord(f)
		if err != nil {
			return err
		}
		if s != nil && !s.Keep {
			if err := restoreDir(s, logf); err != nil {
				return err
			}
		}
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("removing the grant record %s: %w", name, err)
		}
		if s != nil {
			out = append(out, Leftover{Dir: s.Path, Record: name, Kept: s.Keep})
		}
		return nil
	})
	return out, err
}

// eachRecord calls fn for every record file in r's directory, opened and
// with its mutex held, after checking that the directory and the file can
// be trusted: owned by this user, and the directory writable by nobody
// else. Errors of single records are joined; the others stop the walk.
func (r Records) eachRecord(fn func(name string, f *os.File) error) error {
	dir := r.dir()
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the grant records: %w", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !st.IsDir() || !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("the grant records directory %s must be a directory owned by uid %d and writable by nobody else", dir, os.Geteuid())
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading the grant records: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		f, err := openRecord(name, false)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("opening the grant record %s: %w", name, err))
			continue
		}
		var fst unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &fst); err != nil || int(fst.Uid) != os.Geteuid() {
			errs = append(errs, fmt.Errorf("the grant record %s is not owned by uid %d; not trusting it", name, os.Geteuid()))
		} else if err := fn(name, f); err != nil {
			errs = append(errs, err)
		}
		f.Close() // drops its locks
	}
	return errors.Join(errs...)
}
