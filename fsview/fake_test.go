package fsview

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing"
	"time"
)

// fakeFS is an in-memory FS. Entries are given as "PATH/" (directory),
// "PATH" (empty file), "PATH*" (executable empty file), "PATH=CONTENT"
// (file) or "PATH -> TARGET" (symbolic link); missing parents become
// directories. Like the kernel, adding an entry sets its directory's
// modification time (a fake clock ticking once per change). reads counts
// ReadDir calls by path.
type fakeFS struct {
	ents  map[string]*fakeEnt
	clock int64
	reads map[string]int
}

type fakeEnt struct {
	mode    fs.FileMode
	content string
	link    string
	mtime   int64 // seconds after fakeEpoch
}

// fakeEpoch is the fake clock's zero: long before any test runs.
var fakeEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func newFakeFS(spec ...string) *fakeFS {
	f := &fakeFS{ents: map[string]*fakeEnt{"/": {mode: fs.ModeDir | 0o755}}, reads: map[string]int{}}
	for _, s := range spec {
		f.add(s)
	}
	return f
}

func (f *fakeFS) add(s string) {
	var p string
	e := &fakeEnt{mode: 0o644}
	switch {
	case strings.Contains(s, " -> "):
		p, e.link, _ = strings.Cut(s, " -> ")
		e.mode = fs.ModeSymlink | 0o777
	case strings.Contains(s, "="):
		p, e.content, _ = strings.Cut(s, "=")
		if x, ok := strings.CutSuffix(p, "*"); ok {
			p, e.mode = x, 0o755
		}
	case strings.HasSuffix(s, "/"):
		p = strings.TrimSuffix(s, "/")
		e.mode = fs.ModeDir | 0o755
	case strings.HasSuffix(s, "*"):
		p = strings.TrimSuffix(s, "*")
		e.mode = 0o755
	default:
		p = s
	}
	f.clock++
	e.mtime = f.clock
	f.ents[p] = e
	for c := p; c != "/"; c = path.Dir(c) {
		d := path.Dir(c)
		_, ok := f.ents[d]
		if !ok {
			f.ents[d] = &fakeEnt{mode: fs.ModeDir | 0o755}
		}
		f.ents[d].mtime = f.clock // a new name in d
		if ok {
			break
		}
	}
}

type fakeInfo struct {
	name string
	e    *fakeEnt
}

func (i fakeInfo) Name() string               { return i.name }
func (i fakeInfo) Size() int64                { return int64(len(i.e.content)) }
func (i fakeInfo) Mode() fs.FileMode          { return i.e.mode }
func (i fakeInfo) ModTime() time.Time         { return fakeEpoch.Add(time.Duration(i.e.mtime) * time.Second) }
func (i fakeInfo) IsDir() bool                { return i.e.mode.IsDir() }
func (i fakeInfo) Sys() any                   { return nil }
func (i fakeInfo) Type() fs.FileMode          { return i.e.mode.Type() }
func (i fakeInfo) Info() (fs.FileInfo, error) { return i, nil }

func (f *fakeFS) Lstat(p string) (fs.FileInfo, error) {
	e, ok := f.ents[path.Clean(p)]
	if !ok {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return fakeInfo{path.Base(p), e}, nil
}

func (f *fakeFS) ReadDir(p string) ([]fs.DirEntry, error) {
	p = path.Clean(p)
	f.reads[p]++
	e, ok := f.ents[p]
	if !ok || !e.mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
	}
	var out []fs.DirEntry
	for q, e := range f.ents {
		if q != "/" && path.Dir(q) == p {
			out = append(out, fakeInfo{path.Base(q), e})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

func (f *fakeFS) Readlink(p string) (string, error) {
	e, ok := f.ents[path.Clean(p)]
	if !ok || e.mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: fs.ErrInvalid}
	}
	return e.link, nil
}

func (f *fakeFS) ReadFile(p string) ([]byte, error) {
	r, err := resolve(f, p)
	if err != nil {
		return nil, err
	}
	e := f.ents[r]
	if e.mode.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrInvalid}
	}
	return []byte(e.content), nil
}

// render is a plan's operations, one line each, for comparisons.
func render(p *Plan) []string {
	var out []string
	for _, o := range p.Ops {
		var b strings.Builder
		b.WriteString(string(o.Kind))
		if o.ID != 0 {
			fmt.Fprintf(&b, " #%d", o.ID)
		}
		if o.Path != "" {
			b.WriteString(" " + o.Path)
		}
		if o.From != 0 {
			fmt.Fprintf(&b, " <- #%d", o.From)
		}
		if o.Mode != 0 {
			fmt.Fprintf(&b, " %o", o.Mode)
		}
		if o.Owner != nil {
			fmt.Fprintf(&b, " %d:%d", o.Owner.UID, o.Owner.GID)
		}
		if o.ReadOnly {
			b.WriteString(" ro")
		}
		for _, n := range o.Nodes {
			fmt.Fprintf(&b, " +%s:%s", n.Type, n.Path)
			if n.Target != "" {
				b.WriteString("->" + n.Target)
			}
		}
		out = append(out, b.String())
	}
	return out
}

func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return
	}
	t.Errorf("%s:\ngot:\n\t%s\nwant:\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
}

// baseSystem is a small Linux system.
var baseSystem = []string{
	"/tmp/", "/var/tmp/", "/dev/shm/", "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
	"/dev/urandom", "/dev/tty", "/dev/pts/", "/dev/ptmx -> pts/ptmx", "/dev/pts/ptmx",
	"/etc/hosts", "/etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf",
	"/run/systemd/resolve/stub-resolv.conf", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group",
	"/usr/bin/git", "/usr/local/bin/sandgate",
}

func system(extra ...string) *fakeFS {
	return newFakeFS(append(append([]string{}, baseSystem...), extra...)...)
}
