package fsview

import (
	"io/fs"
	"time"
)

// stamp is what tells whether a directory changed between planning and
// the end of the run: its modification time (a name added, removed or
// renamed in it sets it) and, where the system has them, its change time
// (which a program cannot set back, unlike the modification time), inode
// number and link count (a subdirectory made or removed changes it).
type stamp struct {
	mtime, ctime int64 // nanoseconds since the epoch; ctime 0: unknown
	ino, nlink   uint64
}

// known reports whether s was taken at all.
func (s stamp) known() bool { return s != stamp{} }

// recentWindow is how close to planning a directory's last change must be
// for its stamp not to be trusted: file times come from a coarse clock
// (one tick is several milliseconds), so a change made by the command in
// the same tick as one made just before planning could leave the stamp
// as it was. Such a directory is read again after the run.
const recentWindow = 2 * time.Second

// recent reports whether the directory changed too shortly before now
// (when planning began) for its stamp to tell a later change.
func (s stamp) recent(now time.Time) bool {
	last := max(s.mtime, s.ctime)
	return last >= now.Add(-recentWindow).UnixNano()
}

// stampOf is the stamp of the directory fi describes.
func stampOf(fi fs.FileInfo) stamp {
	s := stamp{mtime: fi.ModTime().UnixNano()}
	sysStamp(fi, &s)
	return s
}

// dirStamper is an FS that lists a directory and stamps it with one open
// of it (OSFS on Linux: an fstat of the open directory instead of an
// lstat of its path).
type dirStamper interface {
	readDirStamp(p string) ([]fs.DirEntry, stamp, error)
}

// readDirStamp lists the directory p, sorted by name, and stamps it
// (taken before the listing), through fsys's own way when it has one.
func readDirStamp(fsys FS, p string) ([]fs.DirEntry, stamp, error) {
	if ds, ok := fsys.(dirStamper); ok {
		return ds.readDirStamp(p)
	}
	fi, err := fsys.Lstat(p)
	if err != nil {
		return nil, stamp{}, err
	}
	if !fi.IsDir() {
		return nil, stamp{}, &fs.PathError{Op: "readdir", Path: p, Err: errNotDir}
	}
	ents, err := fsys.ReadDir(p)
	return ents, stampOf(fi), err
}

// readDirStamp passes on to the wrapped FS.
func (c *planFS) readDirStamp(p string) ([]fs.DirEntry, stamp, error) {
	return readDirStamp(c.FS, p)
}
