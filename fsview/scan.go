package fsview

import (
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// candidate is a path that must never be writable, with why.
type candidate struct {
	path string // absolute, as found (not resolved)
	why  string
	kind kind
}

// kind is what a candidate is, for the check after the run (after.go).
type kind int

const (
	kindFile   kind = iota // runs code, or names what does (reported when new)
	kindHooks              // a directory of git hooks (new executable hooks are disarmed)
	kindConfig             // a git configuration file (new ones are searched for programs)
	kindName               // names a git directory (followed, not reported)
)

// scanner walks a writable root for the files that make code run later:
// git directories (bare ones too, found by their HEAD, objects and refs),
// .git files, Mercurial's hgrc and CodeFiles. It reads directories only,
// follows no symbolic link and does not walk into a git directory's
// objects.
type scanner struct {
	fs    FS
	home  string
	skip  func(string) bool // directories not to walk (hidden, private)
	found []candidate
	seen  map[string]bool // git directories already handled
	dirs  int             // directories read

	// record, when not nil, gets every directory the walk reads (planning
	// keeps them for the check after the run); prior, when not nil, are
	// the records of planning: a directory whose stamp is unchanged is not
	// read again (after the run).
	record, prior map[string]*dirRecord
	now           time.Time // when planning began (record)
	reused        int       // directories prior spared reading
}

func (s *scanner) add(p string, k kind, why string) {
	s.found = append(s.found, candidate{path: p, why: why, kind: k})
}

// maxWalkDepth bounds how deep below a writable root the walk goes (a bind
// mount of a directory inside itself would otherwise never end).
const maxWalkDepth = 48

// walk scans the directory dir and everything below it.
func (s *scanner) walk(dir string) {
	stack := []string{dir}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.skip(d) || depth(d)-depth(dir) > maxWalkDepth {
			continue
		}
		sub := s.dir(d)
		for i := len(sub) - 1; i >= 0; i-- {
			stack = append(stack, sub[i])
		}
	}
}

// dir scans the directory d (a git directory, or its entries) and returns
// its subdirectories to walk. With prior records, a directory whose stamp
// did not change is not read: nothing in it was added, removed or renamed;
// the walk goes on into its subdirectories, and into its git directory's
// configuration, worktrees and submodules (they can change below it).
func (s *scanner) dir(d string) []string {
	var st stamp
	var ents []fs.DirEntry
	var err error
	switch {
	case s.prior != nil:
		fi, lerr := s.fs.Lstat(d)
		if lerr != nil || !fi.IsDir() {
			return nil // gone, or replaced by a link: not walked
		}
		st = stampOf(fi)
		if r := s.prior[d]; r != nil && r.stamp.known() && r.stamp == st && !r.recent {
			s.reused++
			if r.git {
				s.gitDir(d, r.worktree)
			}
			return r.sub
		}
		ents, err = s.fs.ReadDir(d)
	case s.record != nil:
		ents, st, err = readDirStamp(s.fs, d)
	default:
		ents, err = s.fs.ReadDir(d)
	}
	s.dirs++
	if err != nil {
		return nil // unreadable here is unreadable to the command too
	}
	rec := &dirRecord{stamp: st, recent: st.recent(s.now)}
	if isGitDir(ents) {
		rec.git, rec.worktree = true, d
		if path.Base(d) == ".git" {
			rec.worktree = path.Dir(d)
		}
		s.gitDir(d, rec.worktree)
	} else {
		rec.sub = s.entries(d, ents)
	}
	if s.record != nil {
		s.record[d] = rec
	}
	return rec.sub
}

// entries scans the listing of the directory d (not a git directory) and
// returns the subdirectories to walk.
func (s *scanner) entries(d string, ents []fs.DirEntry) []string {
	var sub []string
	for _, e := range ents {
		name, p := e.Name(), path.Join(d, e.Name())
		switch {
		case name == ".git" && !e.IsDir():
			s.gitFile(p, d)
			continue
		case name == ".hg" && e.IsDir():
			for _, f := range hgFiles {
				s.add(path.Join(p, f), kindFile, "Mercurial hooks")
			}
			continue
		}
		if slices.Contains(CodeFiles, name) {
			s.add(p, kindFile, "runs code when a tool next enters this directory")
		}
		if e.IsDir() && e.Type()&fs.ModeSymlink == 0 && !slices.Contains(NotWalked, name) {
			sub = append(sub, p)
		}
	}
	return sub
}

// isGitDir reports whether a directory listing is a git directory's.
func isGitDir(ents []fs.DirEntry) bool {
	var head, objects, refs bool
	for _, e := range ents {
		switch e.Name() {
		case "HEAD":
			head = !e.IsDir()
		case "objects":
			objects = e.IsDir()
		case "refs":
			refs = e.IsDir()
		}
	}
	return head && objects && refs
}

// gitDir protects what in the git directory g makes code run, with
// relative core.hooksPath and core.fsmonitor taken from worktree. It walks
// on into its submodules' and linked worktrees' git directories.
func (s *scanner) gitDir(g, worktree string) {
	if s.seen[g] {
		return
	}
	s.seen[g] = true
	for _, f := range gitDirFiles {
		k := kindConfig
		if f == "hooks" {
			k = kindHooks
		}
		s.add(path.Join(g, f), k, "git runs it (hooks, configuration) on the next git command")
	}
	s.gitConfig([]string{path.Join(g, "config"), path.Join(g, "config.worktree")}, g, worktree)
	if ents, err := s.fs.ReadDir(path.Join(g, "worktrees")); err == nil {
		s.dirs++
		for _, e := range ents {
			if e.IsDir() {
				w := path.Join(g, "worktrees", e.Name())
				s.add(path.Join(w, "commondir"), kindName, "names the git directory of a linked worktree")
				s.add(path.Join(w, "config.worktree"), kindConfig, "git configuration of a linked worktree")
			}
		}
	}
	s.walkModules(path.Join(g, "modules"))
}

// walkModules finds the git directories of submodules below dir (they nest
// as modules/NAME, possibly with slashes in NAME, and modules of modules).
func (s *scanner) walkModules(dir string) {
	ents, err := s.fs.ReadDir(dir)
	if err != nil {
		return
	}
	s.dirs++
	if isGitDir(ents) {
		wt := ""
		for _, e := range s.configEntries(path.Join(dir, "config")) {
			if e.Section == "core" && e.Name == "worktree" {
				wt = joinFrom(dir, e.Value)
			}
		}
		s.gitDir(dir, wt)
		return
	}
	for _, e := range ents {
		if e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
			s.walkModules(path.Join(dir, e.Name()))
		}
	}
}

// gitFile protects a .git file (it names the git directory; pointing it
// elsewhere would pick another configuration) and handles the git
// directory it names when that one is a linked worktree's.
func (s *scanner) gitFile(p, worktree string) {
	s.add(p, kindName, "names the git directory of this worktree")
	data, err := s.fs.ReadFile(p)
	if err != nil {
		return
	}
	line, _, _ := strings.Cut(string(data), "\n")
	target, ok := strings.CutPrefix(strings.TrimSpace(line), "gitdir:")
	if !ok {
		return
	}
	g := joinFrom(worktree, strings.TrimSpace(target))
	if cd, err := s.fs.ReadFile(path.Join(g, "commondir")); err == nil {
		common := joinFrom(g, strings.TrimSpace(string(cd)))
		s.gitConfig([]string{path.Join(common, "config"), path.Join(g, "config.worktree")}, g, worktree)
		return
	}
	s.gitDir(g, worktree)
}

// joinFrom makes p absolute relative to dir (p as written in a file).
func joinFrom(dir, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(dir, p)
}

// configEntries parses the git configuration file p ("" on any error
// reading it; what parsed before a syntax error is kept).
func (s *scanner) configEntries(p string) []gitEntry {
	data, err := s.fs.ReadFile(p)
	if err != nil {
		return nil
	}
	ents, _ := parseGitConfig(string(data))
	return ents
}

// maxIncludes bounds the include chain followed from one configuration.
const maxIncludes = 10

// gitConfig protects what the configuration files name that runs code:
// the files they include (include.path, includeIf.*.path), core.hooksPath
// (and, for husky's "DIR/_", DIR: its hooks run the files there) and a
// core.fsmonitor program. gitdir is the git directory (relative hooksPath
// is taken from worktree, or gitdir when there is none).
func (s *scanner) gitConfig(files []string, gitdir, worktree string) {
	if worktree == "" {
		worktree = gitdir
	}
	queue := append([]string(nil), files...)
	for n := 0; len(queue) > 0 && n < maxIncludes+len(files); n++ {
		f := queue[0]
		queue = queue[1:]
		for _, e := range s.configEntries(f) {
			switch {
			case e.Name == "path" && (e.Section == "include" || e.Section == "includeif"):
				inc := s.expandHome(e.Value)
				inc = joinFrom(path.Dir(f), inc)
				s.add(inc, kindConfig, "included by git configuration "+f)
				queue = append(queue, inc)
			case e.Section == "core" && e.Subsection == "" && e.Name == "hookspath":
				h := joinFrom(worktree, s.expandHome(e.Value))
				s.add(h, kindHooks, "core.hooksPath of "+f)
				if path.Base(h) == "_" {
					s.add(path.Dir(h), kindFile, "husky's hooks, run from core.hooksPath of "+f)
				}
			case e.Section == "core" && e.Subsection == "" && e.Name == "fsmonitor":
				if b := strings.ToLower(e.Value); b != "true" && b != "false" && b != "" && !strings.ContainsAny(e.Value, " \t") {
					s.add(joinFrom(worktree, s.expandHome(e.Value)), kindFile, "core.fsmonitor of "+f)
				}
			}
		}
	}
}

// expandHome replaces a leading "~/" as git does.
func (s *scanner) expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok && s.home != "" {
		return path.Join(s.home, rest)
	}
	return p
}
