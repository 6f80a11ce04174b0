package fsview

import "io/fs"

// planFS is the FS one planning reads through: it remembers what Lstat
// and Readlink answered (errors too), so that resolving the many paths
// that share leading directories (every candidate below the home and the
// workspace, each resolved again by checkRoots and the guards) costs one
// system call per distinct path instead of one per component per path.
// A plan describes the file system at one moment; reading a path twice
// during planning adds nothing but time. It is used by one goroutine.
type planFS struct {
	FS
	lstats map[string]lstatAnswer
	links  map[string]linkAnswer
}

type lstatAnswer struct {
	fi  fs.FileInfo
	err error
}

type linkAnswer struct {
	target string
	err    error
}

// newPlanFS wraps fsys for one planning.
func newPlanFS(fsys FS) *planFS {
	return &planFS{FS: fsys, lstats: make(map[string]lstatAnswer, 256), links: map[string]linkAnswer{}}
}

// Lstat answers from memory when p was asked before.
func (c *planFS) Lstat(p string) (fs.FileInfo, error) {
	if a, ok := c.lstats[p]; ok {
		return a.fi, a.err
	}
	fi, err := c.FS.Lstat(p)
	c.lstats[p] = lstatAnswer{fi, err}
	return fi, err
}

// Readlink answers from memory when p was asked before.
func (c *planFS) Readlink(p string) (string, error) {
	if a, ok := c.links[p]; ok {
		return a.target, a.err
	}
	t, err := c.FS.Readlink(p)
	c.links[p] = linkAnswer{t, err}
	return t, err
}
