package fsview

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// FS is what planning reads of the file system. OSFS is the real one;
// tests use a fake, so a plan is computed the same way on every OS.
// Paths are absolute, slash-separated Linux paths.
type FS interface {
	// Lstat describes path without following a final symbolic link.
	Lstat(path string) (fs.FileInfo, error)
	// ReadDir lists the directory path, sorted by name.
	ReadDir(path string) ([]fs.DirEntry, error)
	// Readlink returns the target of the symbolic link path.
	Readlink(path string) (string, error)
	// ReadFile returns the contents of the file path.
	ReadFile(path string) ([]byte, error)
}

// OSFS is the FS of the running system.
type OSFS struct{}

// Lstat calls os.Lstat.
func (OSFS) Lstat(p string) (fs.FileInfo, error) { return os.Lstat(p) }

// ReadDir calls os.ReadDir.
func (OSFS) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(p) }

// Readlink calls os.Readlink.
func (OSFS) Readlink(p string) (string, error) { return os.Readlink(p) }

// ReadFile reads the file p, at most maxReadFile bytes of it. It refuses
// what is not a regular file (opening a FIFO the command made would wait
// for a writer for ever; a device is no configuration): it checks before
// opening (no device is opened) and again on what it opened, without
// waiting (O_NONBLOCK), so that a FIFO put in its place in between is
// refused too.
func (OSFS) ReadFile(p string) ([]byte, error) {
	if fi, err := os.Stat(p); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: p, Err: errNotRegular}
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: p, Err: errNotRegular}
	}
	return io.ReadAll(io.LimitReader(f, maxReadFile))
}

// maxReadFile bounds what planning reads of one file (git configuration,
// .git files): more is not a configuration a person wrote.
const maxReadFile = 1 << 20

// maxLinks bounds the symbolic links followed while resolving one path
// (the kernel's limit).
const maxLinks = 40

// errNotRegular is a file that is not a regular file.
var errNotRegular = errors.New("not a regular file")

// errNotDir is a path that is not a directory.
var errNotDir = errors.New("not a directory")

// errLoop is a path with too many symbolic links.
var errLoop = errors.New("too many levels of symbolic links")

// resolve returns the absolute path p with every symbolic link in it
// followed, "." and ".." applied, like realpath(3); the final component
// must exist.
func resolve(fsys FS, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s: not an absolute path", p)
	}
	links := 0
	done := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, c)
		fi, err := fsys.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: %w", p, errLoop)
		}
		target, err := fsys.Readlink(next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return done, nil
}

// resolveParent resolves every component of p but the last, which need not
// exist and is not followed.
func resolveParent(fsys FS, p string) (string, error) {
	p = path.Clean(p)
	if p == "/" {
		return p, nil
	}
	dir, err := resolve(fsys, path.Dir(p))
	if err != nil {
		return "", err
	}
	return path.Join(dir, path.Base(p)), nil
}

// resolveExisting resolves the longest part of p that exists and appends
// the rest unresolved.
func resolveExisting(fsys FS, p string) (string, error) {
	p = path.Clean(p)
	rest := ""
	for {
		r, err := resolve(fsys, p)
		if err == nil {
			return path.Join(r, rest), nil
		}
		if p == "/" || !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		rest = path.Join(path.Base(p), rest)
		p = path.Dir(p)
	}
}

// within reports whether p is root or lies below it (both clean).
func within(p, root string) bool {
	if root == "/" {
		return true
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

// depth is the number of components of the clean absolute path p.
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}
