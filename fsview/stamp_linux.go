package fsview

import (
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysStamp adds the change time, inode number and link count of the
// system's own description of fi to s.
func sysStamp(fi fs.FileInfo, s *stamp) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ctime = st.Ctim.Nano()
		s.ino, s.nlink = st.Ino, uint64(st.Nlink)
	}
}

// readDirStamp opens the directory p (not through a final symbolic link),
// stamps it with fstat and lists it: two system calls more than ReadDir's
// (fstat, and fcntl in os.NewFile), each cheaper than an lstat of the path.
func (OSFS) readDirStamp(p string) ([]fs.DirEntry, stamp, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, stamp{}, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, stamp{}, &fs.PathError{Op: "fstat", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, stamp{mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), ino: st.Ino, nlink: uint64(st.Nlink)}, err
}
