package fsview

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// dirRecord is what planning saw of one directory it read in a writable
// root.
type dirRecord struct {
	stamp    stamp
	recent   bool     // changed just before planning: read again after the run
	sub      []string // the subdirectories the walk went on into
	git      bool     // a git directory (not walked into)
	worktree string   // the git directory's worktree
}

// heldPath is a candidate that existed when planning: a file or directory
// (protected by the view) or a symbolic link (its target is protected).
type heldPath struct {
	link   bool
	target string
}

// afterRun is what planning keeps of the writable roots for AfterRun.
type afterRun struct {
	roots []string // the writable root directories walked
	shade shade
	home  string
	dirs  map[string]*dirRecord
	held  map[string]heldPath
}

// newAfterRun keeps what the planning scan sc of roots saw.
func newAfterRun(fsys FS, sc *scanner, roots []string, sh shade) *afterRun {
	a := &afterRun{roots: roots, shade: sh, home: sc.home, dirs: sc.record, held: make(map[string]heldPath, len(sc.found))}
	for _, c := range sc.found {
		fi, err := fsys.Lstat(c.path)
		if err != nil {
			continue
		}
		h := heldPath{link: fi.Mode()&fs.ModeSymlink != 0}
		if h.link {
			h.target, _ = fsys.Readlink(c.path)
		}
		a.held[c.path] = h
	}
	return a
}

// FindingKind is what a Finding is about.
type FindingKind int

// The kinds of findings.
const (
	// FoundHook is an executable git hook (or a symbolic link in a hooks
	// directory) that the command created.
	FoundHook FindingKind = iota + 1
	// FoundConfigKey is a variable of a git configuration file the command
	// created that makes git run a program (or read more configuration).
	FoundConfigKey
	// FoundFile is another file that makes a tool run code, or a symbolic
	// link where one was, that the command created.
	FoundFile
)

// Finding is something in a writable root that makes code run outside the
// sandbox later (the user's next git command, a tool entering the
// directory) and that the command created during the run, where planning
// could not protect it (AfterRun).
type Finding struct {
	Kind FindingKind
	// Path is the file: the hook, the configuration file, the code file.
	Path string
	// Why says what runs it.
	Why string
	// Link is the target when Path is a symbolic link (never followed).
	Link string
	// Key and Value are FoundConfigKey's variable, as git spells it
	// (core.fsmonitor, filter.NAME.smudge), and its last value; Count is
	// how many times the file sets it.
	Key, Value string
	Count      int
	// Disarmed says that the hook was made non-executable (chmod a-x);
	// otherwise Err says why it was not.
	Disarmed bool
	Err      error
}

// errNoDisarm is a hook left as it is because the caller gave no way to
// disarm it.
var errNoDisarm = errors.New("not disarmed on this system")

// AfterRun checks the writable roots after the run for what makes code run
// later outside the sandbox and did not exist when the plan was made (so
// the view could not protect it): new git directories (a `git init`, a
// clone, a submodule), new hooks directories and configuration files of
// the repositories planning found, and new CodeFiles. It reads again only
// the directories whose stamp changed (and walks new ones), so it costs
// one lstat per directory planning read when nothing changed. Executable
// hooks that are not git's *.sample files are passed to disarm (nil:
// reported only); a new configuration is searched for variables that run
// programs (reported, not changed). It follows no symbolic link the
// command could have made.
//
// changed is Changed without the paths the findings cover.
func (p *Plan) AfterRun(fsys FS, disarm func(path string) error) (changed []string, found []Finding) {
	changed = p.Changed(fsys)
	a := p.after
	if a == nil {
		return changed, nil
	}
	examined := map[string]bool{}
	for _, c := range a.rescan(fsys).found {
		if examined[c.path] || !a.inRoots(c.path) || a.unchanged(fsys, c.path) {
			continue
		}
		fi, err := fsys.Lstat(c.path)
		if err != nil {
			continue
		}
		examined[c.path] = true
		found = append(found, examine(fsys, c, fi, disarm)...)
	}
	changed = slices.DeleteFunc(changed, func(p string) bool { return examined[p] })
	return changed, found
}

// rescan walks the writable roots again, reading only what changed.
func (a *afterRun) rescan(fsys FS) *scanner {
	sc := &scanner{fs: fsys, home: a.home, seen: map[string]bool{}, skip: a.shade.shadowed, prior: a.dirs}
	for _, r := range a.roots {
		sc.walk(r)
	}
	return sc
}

// inRoots reports whether p lies in a writable root the walk covers.
func (a *afterRun) inRoots(p string) bool {
	return slices.ContainsFunc(a.roots, func(r string) bool { return within(p, r) }) && !a.shade.shadowed(p)
}

// unchanged reports whether p is a candidate planning held that is still
// what it was: protected (a file or directory), or the same symbolic link.
func (a *afterRun) unchanged(fsys FS, p string) bool {
	h, ok := a.held[p]
	if !ok {
		return false
	}
	if !h.link {
		return true
	}
	t, err := fsys.Readlink(p)
	return err == nil && t == h.target
}

// examine describes the new candidate c (fi its Lstat).
func examine(fsys FS, c candidate, fi fs.FileInfo, disarm func(string) error) []Finding {
	switch {
	case c.kind == kindName:
		return nil // what it names is found on its own
	case fi.Mode()&fs.ModeSymlink != 0:
		t, _ := fsys.Readlink(c.path)
		return []Finding{{Kind: FoundFile, Path: c.path, Why: c.why, Link: t}}
	case c.kind == kindHooks && fi.IsDir():
		return hooks(fsys, c.path, disarm)
	case c.kind == kindConfig && fi.Mode().IsRegular():
		return configKeys(fsys, c.path)
	}
	return []Finding{{Kind: FoundFile, Path: c.path, Why: c.why}}
}

// hookWhy is what runs a hook.
const hookWhy = "git runs it on the next git command"

// hooks disarms the executable hooks of the new hooks directory dir.
func hooks(fsys FS, dir string, disarm func(string) error) []Finding {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return []Finding{{Kind: FoundFile, Path: dir, Why: "a git hooks directory that could not be read: " + err.Error()}}
	}
	var out []Finding
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sample") {
			continue // git runs no *.sample file
		}
		p := path.Join(dir, e.Name())
		fi, err := fsys.Lstat(p)
		switch {
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			t, _ := fsys.Readlink(p)
			out = append(out, Finding{Kind: FoundHook, Path: p, Why: hookWhy, Link: t})
		case fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0:
			f := Finding{Kind: FoundHook, Path: p, Why: hookWhy, Err: errNoDisarm}
			if disarm != nil {
				f.Err = disarm(p)
			}
			f.Disarmed = f.Err == nil
			out = append(out, f)
		}
	}
	return out
}

// configKeys reports the variables of the new git configuration file p
// that run programs (or read more configuration).
func configKeys(fsys FS, p string) []Finding {
	data, err := fsys.ReadFile(p)
	if err != nil {
		return []Finding{{Kind: FoundFile, Path: p, Why: "a git configuration that could not be read: " + err.Error()}}
	}
	ents, _ := parseGitConfig(string(data))
	var out []Finding
	for _, e := range ents {
		key, why := programKey(e)
		if key == "" {
			continue
		}
		if i := slices.IndexFunc(out, func(f Finding) bool { return strings.EqualFold(f.Key, key) }); i >= 0 {
			out[i].Value = e.Value
			out[i].Count++
			continue
		}
		out = append(out, Finding{Kind: FoundConfigKey, Path: p, Why: why, Key: key, Value: e.Value, Count: 1})
	}
	return out
}

// String is the warning for f, one line, with what was done and how to
// undo it or remove the file after checking it.
func (f Finding) String() string {
	p := shellQuote(f.Path)
	f.Why = printable(f.Why) // it can hold a path the command named
	if f.Err != nil {
		f.Err = errors.New(printable(f.Err.Error()))
	}
	switch {
	case f.Kind == FoundHook && f.Link != "":
		return fmt.Sprintf("CMD created the git hook %s during the run, a symbolic link to %s (%s), left as it is; check it, or remove it: rm %s", p, shellQuote(f.Link), f.Why, p)
	case f.Kind == FoundHook && f.Disarmed:
		return fmt.Sprintf("CMD created the git hook %s during the run (%s); sandgate made it non-executable (chmod a-x); check it, then re-enable it with: chmod +x %s", p, f.Why, p)
	case f.Kind == FoundHook:
		return fmt.Sprintf("CMD created the git hook %s during the run (%s); it could not be made non-executable (%v): check it before you run git there, or remove it: rm %s", p, f.Why, f.Err, p)
	case f.Kind == FoundConfigKey:
		unset := "--unset"
		if f.Count > 1 {
			unset = "--unset-all"
		}
		return fmt.Sprintf("CMD created the git configuration %s during the run, which sets %s = %s (%s); check it, or remove it with: git config --file %s %s %s",
			p, f.Key, shellQuote(f.Value), f.Why, p, unset, shellQuote(f.Key))
	case f.Link != "":
		return fmt.Sprintf("CMD created %s during the run, a symbolic link to %s (%s); check it before you use it", p, shellQuote(f.Link), f.Why)
	}
	return fmt.Sprintf("CMD created %s during the run (%s); check it before a tool runs it", p, f.Why)
}
