package fsview

import (
	"io/fs"
	"syscall"
)

// sysStamp adds the change time, inode number and link count of the
// system's own description of fi to s.
func sysStamp(fi fs.FileInfo, s *stamp) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ctime = st.Ctim.Nano()
		s.ino, s.nlink = st.Ino, uint64(st.Nlink)
	}
}
