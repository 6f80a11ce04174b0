//go:build linux

package accounts

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// This file edits the account databases (passwd, shadow, group, gshadow)
// directly, as shadow-utils does, so that setup needs no useradd or
// groupadd at run time: it takes the lock every account tool honours
// (.pwd.lock), reads the files, changes lines, and replaces each file with
// a complete new copy (same mode and owner) by an atomic rename.

// accountFile is one colon-separated account database, line by line.
type accountFile struct {
	path    string
	exists  bool
	lines   []string // every line as read, comments and NIS lines included
	mode    fs.FileMode
	uid     int
	gid     int
	changed bool
}

func readAccountFile(path string) (*accountFile, error) {
	f := &accountFile{path: path, mode: 0o644}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	f.exists = true
	f.mode = st.Mode().Perm()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		f.uid, f.gid = int(sys.Uid), int(sys.Gid)
	}
	// Split on "\n" only: every other byte, "\r" included, belongs to its
	// line (glibc reads a trailing "\r" as part of the last field), and a
	// rewrite must keep other entries byte for byte.
	text := string(data)
	text = strings.TrimSuffix(text, "\n")
	if text != "" || len(data) > 0 {
		f.lines = strings.Split(text, "\n")
	}
	return f, nil
}

// find returns the fields of the entry named name, and its line index, or
// -1 when there is none.
func (f *accountFile) find(name string) ([]string, int) {
	for i, l := range f.lines {
		if n, _, ok := strings.Cut(l, ":"); ok && n == name {
			return strings.Split(l, ":"), i
		}
	}
	return nil, -1
}

// entries returns the fields of every entry (lines that are not comments or
// NIS references).
func (f *accountFile) entries() [][]string {
	var out [][]string
	for _, l := range f.lines {
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-") {
			continue
		}
		out = append(out, strings.Split(l, ":"))
	}
	return out
}

// add appends an entry, before NIS "+" lines when there are any (they must
// stay last). A field holding a colon or a newline is a bug of the caller.
func (f *accountFile) add(fields ...string) {
	for _, x := range fields {
		if strings.ContainsAny(x, ":\n") {
			panic(fmt.Sprintf("setup: account field %q holds a separator", x))
		}
	}
	line := strings.Join(fields, ":")
	at := len(f.lines)
	for i, l := range f.lines {
		if strings.HasPrefix(l, "+") {
			at = i
			break
		}
	}
	f.lines = append(f.lines[:at], append([]string{line}, f.lines[at:]...)...)
	f.changed = true
}

// remove deletes the entry named name; it reports whether there was one.
func (f *accountFile) remove(name string) bool {
	_, i := f.find(name)
	if i < 0 {
		return false
	}
	f.lines = append(f.lines[:i], f.lines[i+1:]...)
	f.changed = true
	return true
}

// set replaces the fields of the entry at line i.
func (f *accountFile) set(i int, fields []string) {
	f.lines[i] = strings.Join(fields, ":")
	f.changed = true
}

// write replaces the file with its new content: a backup of the old one at
// PATH- (as shadow-utils keeps), then a temporary file with the same mode
// and owner, synced and renamed over the original.
func (f *accountFile) write() error {
	if !f.changed {
		return nil
	}
	var b bytes.Buffer
	for _, l := range f.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if f.exists {
		old, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("backing up %s: %w", f.path, err)
		}
		if err := f.replace(f.path+"-", old); err != nil {
			return fmt.Errorf("backing up %s: %w", f.path, err)
		}
	}
	if err := f.replace(f.path, b.Bytes()); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	f.changed = false
	f.exists = true
	return nil
}

func (f *accountFile) replace(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".sandgate-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(f.mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chown(f.uid, f.gid); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
