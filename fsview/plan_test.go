package fsview

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"testing"
)

// homeSystem is a user's machine: a project with a git repository in the
// home directory, credential stores and sandgate's configuration.
func homeSystem(extra ...string) *fakeFS {
	return system(append([]string{
		"/home/u/.bashrc", "/home/u/.profile",
		"/home/u/.ssh/id_ed25519", "/home/u/.ssh/known_hosts",
		"/home/u/.netrc", "/home/u/.aws/credentials",
		"/home/u/.cargo/credentials.toml", "/home/u/.cargo/bin/",
		"/home/u/.config/sandgate/config.toml", "/home/u/.config/gh/hosts.yml",
		"/home/u/proj/main.go",
		"/home/u/proj/.git/HEAD", "/home/u/proj/.git/objects/", "/home/u/proj/.git/refs/",
		"/home/u/proj/.git/config=[core]\n\tbare = false\n",
		"/home/u/proj/.git/hooks/pre-commit.sample",
	}, extra...)...)
}

func homeProfile() Profile {
	return Profile{
		Mode:        ModeWorkspace,
		Workspace:   "/home/u/proj",
		Home:        "/home/u",
		Unhide:      []string{"~/.ssh/known_hosts"},
		ConfigPaths: []string{"~/.config/sandgate", "~/.config/sandgate/config.toml"},
		Executable:  "/usr/local/bin/sandgate",
		Command:     "/usr/bin/git",
	}
}

func TestPlanWorkspaceInHome(t *testing.T) {
	p, err := NewPlan(homeProfile(), homeSystem())
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, "ops", render(p), []string{
		"capture #1 /home/u/proj",
		"capture #2 /home/u",
		"readonly-all",
		"scratch /tmp",
		"overlay #3 <- #2",
		"tmpfs /tmp 1777",
		"tmpfs /dev/shm 1777",
		"bind /home/u <- #3",
		"tmpfs /var/tmp 1777",
		"tmpfs /home/u/.aws 755 ro",
		"empty-file /home/u/.netrc",
		"capture #4 /home/u/.ssh/known_hosts",
		"tmpfs /home/u/.ssh 755 ro +file:/home/u/.ssh/known_hosts",
		"bind /home/u/proj <- #1",
		"empty-file /home/u/.cargo/credentials.toml",
		"tmpfs /home/u/.config/gh 755 ro",
		"bind /home/u/.ssh/known_hosts <- #4 ro",
		"pin /home/u/proj/.git",
		"protect /home/u/.bashrc",
		"protect /home/u/.profile",
		"protect /home/u/.config/sandgate",
		"protect /home/u/proj/.git/config",
		"protect /home/u/proj/.git/hooks",
	})
	diffLines(t, "writable", p.Writable, []string{
		"/dev/full", "/dev/null", "/dev/pts", "/dev/pts/ptmx", "/dev/random", "/dev/shm", "/dev/tty",
		"/dev/urandom", "/dev/zero", "/home/u", "/home/u/proj", "/tmp", "/var/tmp",
	})
	diffLines(t, "hidden", p.Hidden, []string{
		"/home/u/.aws", "/home/u/.cargo/credentials.toml", "/home/u/.config/gh", "/home/u/.netrc", "/home/u/.ssh",
	})
	var watched []string
	for _, w := range p.Watch {
		watched = append(watched, w.Path)
	}
	for _, w := range []string{"/home/u/proj/.bashrc", "/home/u/proj/.zshenv"} {
		if !slices.Contains(watched, w) {
			t.Errorf("watch list %v lacks %s (missing startup file in the workspace)", watched, w)
		}
	}
	if slices.Contains(watched, "/home/u/.bashrc") {
		t.Errorf("the home's startup files are in the copy, not watched: %v", watched)
	}
}

// TestPlanUnderTmp is a CI checkout under /tmp, with the command and
// sandgate's binary there too, and a $TMPDIR that exists only in the
// private /tmp.
func TestPlanUnderTmp(t *testing.T) {
	fsys := system(
		"/root/.bashrc", "/root/.ssh/id_rsa",
		"/tmp/ci/ws/src/a.go", "/tmp/ci/ws/.envrc", "/tmp/ci/ws/sub/.envrc",
		"/tmp/ci/bin/tool", "/tmp/ci/link -> bin/tool",
		"/tmp/go-build1/sandgate.test",
		"/tmp/other-users-file",
	)
	p, err := NewPlan(Profile{
		Mode:       ModeWorkspace,
		Workspace:  "/tmp/ci/ws",
		Home:       "/root",
		TmpDir:     "/tmp/user/0",
		Executable: "/tmp/go-build1/sandgate.test",
		Command:    "/tmp/ci/link",
		AuditFile:  "/tmp/ci/ws/audit.jsonl",
	}, fsys)
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, "ops", render(p), []string{
		"capture #1 /tmp/ci/bin/tool",
		"capture #2 /tmp/ci/ws",
		"capture #3 /tmp/go-build1/sandgate.test",
		"capture #4 /root",
		"readonly-all",
		"scratch /tmp",
		"overlay #5 <- #4",
		"bind /root <- #5",
		"tmpfs /tmp 1777 +dir:/tmp/user/0 +dir:/tmp/ci/ws +file:/tmp/go-build1/sandgate.test +file:/tmp/ci/bin/tool +symlink:/tmp/ci/link->/tmp/ci/bin/tool",
		"tmpfs /dev/shm 1777",
		"tmpfs /root/.ssh 755 ro",
		"tmpfs /var/tmp 1777",
		"tmpfs /tmp/user/0 700",
		"bind /tmp/ci/ws <- #2",
		"bind /tmp/go-build1/sandgate.test <- #3 ro",
		"bind /tmp/ci/bin/tool <- #1 ro",
		"pin /tmp/ci/ws/sub",
		"protect /root/.bashrc",
		"protect /tmp/ci/ws/.envrc",
		"protect /tmp/ci/ws/sub/.envrc",
	})
	var watched []string
	for _, w := range p.Watch {
		watched = append(watched, w.Path)
	}
	if !slices.Contains(watched, "/tmp/ci/ws/audit.jsonl") {
		t.Errorf("the audit file inside the workspace, not created yet, is not watched: %v", watched)
	}
	if !slices.Contains(p.Writable, "/tmp/user/0") || !slices.Contains(p.Writable, "/tmp/ci/ws") {
		t.Errorf("writable = %v", p.Writable)
	}
}

// protects returns the OpProtect and OpPin lines of a plan.
func protects(p *Plan) []string {
	var out []string
	for _, l := range render(p) {
		if strings.HasPrefix(l, "protect ") || strings.HasPrefix(l, "pin ") {
			out = append(out, l)
		}
	}
	return out
}

func TestPlanGitRepositories(t *testing.T) {
	ws := "/srv/ws"
	repo := func(dir, config string) []string {
		return []string{dir + "/HEAD", dir + "/objects/", dir + "/refs/", dir + "/config=" + config, dir + "/hooks/"}
	}
	spec := []string{"/home/u/", ws + "/README"}
	// The workspace's own repository: husky hooks, an include, a
	// submodule and a linked worktree.
	spec = append(spec, repo(ws+"/.git", "[core]\n\thooksPath = .husky/_\n[include]\n\tpath = ../tools/git.inc\n"+
		"[includeIf \"gitdir:~/\"]\n\tpath = ~/.gitconfig-work\n")...)
	spec = append(spec, ws+"/tools/git.inc=[core]\n\tfsmonitor = tools/monitor.sh\n", ws+"/tools/monitor.sh",
		ws+"/.husky/_/h", ws+"/.husky/pre-commit")
	spec = append(spec, repo(ws+"/.git/modules/lib/inner", "[core]\n\tworktree = ../../../../lib/inner\n")...)
	spec = append(spec, ws+"/lib/inner/.git=gitdir: ../../.git/modules/lib/inner\n")
	spec = append(spec, ws+"/.git/worktrees/feature/HEAD", ws+"/.git/worktrees/feature/commondir=../..\n",
		ws+"/feature/.git=gitdir: "+ws+"/.git/worktrees/feature\n")
	// A bare repository deeper down, whose hooks are a symbolic link.
	spec = append(spec, ws+"/mirror/x.git/HEAD", ws+"/mirror/x.git/objects/", ws+"/mirror/x.git/refs/",
		ws+"/mirror/x.git/config=[core]\n\tbare = true\n", ws+"/mirror/x.git/hooks -> ../hookdir", ws+"/mirror/hookdir/")
	// Mercurial and code files.
	spec = append(spec, ws+"/hgproj/.hg/hgrc", ws+"/hgproj/.hg/store/", ws+"/app/.vscode/tasks.json", ws+"/app/.envrc")
	p, err := NewPlan(Profile{Mode: ModeWorkspace, Workspace: ws, Home: "/home/u"}, system(spec...))
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, "guards", protects(p), []string{
		"pin /srv/ws/.git",
		"pin /srv/ws/app",
		"pin /srv/ws/feature",
		"pin /srv/ws/hgproj",
		"pin /srv/ws/lib",
		"pin /srv/ws/mirror",
		"pin /srv/ws/tools",
		"pin /srv/ws/.git/modules",
		"pin /srv/ws/.git/worktrees",
		"pin /srv/ws/hgproj/.hg",
		"pin /srv/ws/lib/inner",
		"pin /srv/ws/mirror/x.git",
		"pin /srv/ws/.git/modules/lib",
		"pin /srv/ws/.git/worktrees/feature",
		"pin /srv/ws/.git/modules/lib/inner",
		"protect /srv/ws/.husky",
		"protect /srv/ws/.git/config",
		"protect /srv/ws/.git/hooks",
		"protect /srv/ws/app/.envrc",
		"protect /srv/ws/app/.vscode",
		"protect /srv/ws/feature/.git",
		"protect /srv/ws/mirror/hookdir",
		"protect /srv/ws/tools/git.inc",
		"protect /srv/ws/tools/monitor.sh",
		"protect /srv/ws/hgproj/.hg/hgrc",
		"protect /srv/ws/lib/inner/.git",
		"protect /srv/ws/mirror/x.git/config",
		"protect /srv/ws/.git/worktrees/feature/commondir",
		"protect /srv/ws/.git/modules/lib/inner/config",
		"protect /srv/ws/.git/modules/lib/inner/hooks",
	})
	found := false
	for _, w := range p.Watch {
		if w.Path == ws+"/mirror/x.git/hooks" && w.Link == "../hookdir" {
			found = true
		}
	}
	if !found {
		t.Errorf("the hooks symbolic link is not watched: %+v", p.Watch)
	}
}

func TestPlanErrors(t *testing.T) {
	fsys := homeSystem("/srv/file", "/srv/dir/")
	tests := []struct {
		name  string
		edit  func(*Profile)
		field string
		path  string
		kind  ErrorKind
	}{
		{"relative write", func(p *Profile) { p.Write = []string{"build"} }, "write", "build", NotAbsolute},
		{"missing write", func(p *Profile) { p.Write = []string{"/srv/nope"} }, "write", "/srv/nope", NotExist},
		{"missing workspace", func(p *Profile) { p.Workspace = "/srv/gone" }, "workspace", "/srv/gone", NotExist},
		{"workspace is a file", func(p *Profile) { p.Workspace = "/srv/file" }, "workspace", "/srv/file", NotDirectory},
		{"no workspace", func(p *Profile) { p.Workspace = "" }, "workspace", "", InvalidProfile},
		{"workspace with readonly", func(p *Profile) { p.Mode = ModeReadonly }, "workspace", "/home/u/proj", InvalidProfile},
		{"workspace is home", func(p *Profile) { p.Workspace = "~" }, "workspace", "~", ContainsHome},
		{"write above home", func(p *Profile) { p.Write = []string{"/home"} }, "write", "/home", ContainsHome},
		{"write everything", func(p *Profile) { p.Write = []string{"/"} }, "write", "/", WholeFileSystem},
		{"write git hooks", func(p *Profile) { p.Write = []string{"/home/u/proj/.git/hooks"} }, "write", "/home/u/proj/.git/hooks", InsideNeverWritable},
		{"write sandgate config", func(p *Profile) { p.Write = []string{"~/.config/sandgate"} }, "write", "~/.config/sandgate", InsideNeverWritable},
		{"write sandgate binary", func(p *Profile) { p.Write = []string{"/usr/local/bin/sandgate"} }, "write", "/usr/local/bin/sandgate", InsideNeverWritable},
		{"write hosts", func(p *Profile) { p.Write = []string{"/etc/hosts"} }, "write", "/etc/hosts", InsideNeverWritable},
		{"write bashrc", func(p *Profile) { p.Write = []string{"/home/u/.bashrc"} }, "write", "/home/u/.bashrc", InsideNeverWritable},
		{"relative hide", func(p *Profile) { p.Hide = []string{"secrets"} }, "hide", "secrets", NotAbsolute},
		{"relative unhide", func(p *Profile) { p.Unhide = []string{".ssh"} }, "unhide", ".ssh", NotAbsolute},
		{"missing home", func(p *Profile) { p.Home = "/home/nobody" }, "home", "/home/nobody", NotExist},
		{"tmpdir missing outside /tmp", func(p *Profile) { p.TmpDir = "/srv/tmp" }, "tmpdir", "/srv/tmp", NotExist},
		{"tmpdir root", func(p *Profile) { p.TmpDir = "/" }, "tmpdir", "/", WholeFileSystem},
		{"tilde without home", func(p *Profile) { p.Home = ""; p.Unhide = nil; p.ConfigPaths = nil; p.Write = []string{"~/x"} }, "write", "~/x", NotAbsolute},
		{"fresh home missing", func(p *Profile) { p.FreshHome = "/var/lib/sandgate/home/x" }, "fresh_home", "/var/lib/sandgate/home/x", NotExist},
		{"bad mode", func(p *Profile) { p.Mode = Mode(7) }, "mode", "Mode(7)", InvalidProfile},
		{"relative invoked", func(p *Profile) { p.Invoked = "sandgate" }, "executable", "sandgate", NotAbsolute},
		{"relative audit", func(p *Profile) { p.AuditFile = "a.jsonl" }, "audit", "a.jsonl", NotAbsolute},
		{"relative config", func(p *Profile) { p.ConfigPaths = []string{"sg.toml"} }, "config", "sg.toml", NotAbsolute},
		{"relative command", func(p *Profile) { p.Command = "bin/x" }, "command", "bin/x", NotAbsolute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := homeProfile()
			tt.edit(&pr)
			_, err := NewPlan(pr, fsys)
			var pe *PathError
			if !errors.As(err, &pe) {
				t.Fatalf("NewPlan = %v, want a *PathError", err)
			}
			if pe.Field != tt.field || pe.Path != tt.path || pe.Kind != tt.kind {
				t.Errorf("error %q: field %q path %q kind %d, want %q %q %d", err, pe.Field, pe.Path, pe.Kind, tt.field, tt.path, tt.kind)
			}
			if tt.path != "" && !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name %q", err, tt.path)
			}
		})
	}
}

func TestPlanReadonly(t *testing.T) {
	pr := homeProfile()
	pr.Mode, pr.Workspace = ModeReadonly, ""
	pr.Write = []string{"/home/u/.cargo/bin"}
	p, err := NewPlan(pr, homeSystem())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range p.Ops {
		if o.Kind == OpOverlay || (o.Kind == OpBind && o.Path == "/home/u") {
			t.Errorf("readonly mode has a copy-on-write home: %+v", o)
		}
	}
	diffLines(t, "writable", p.Writable, []string{
		"/dev/full", "/dev/null", "/dev/pts", "/dev/pts/ptmx", "/dev/random", "/dev/shm", "/dev/tty",
		"/dev/urandom", "/dev/zero", "/home/u/.cargo/bin", "/tmp", "/var/tmp",
	})
	// Only the --write root is written for real: its own startup files
	// are watched, the home's are read-only already.
	diffLines(t, "guards", protects(p), nil)
}

// TestPlanIdentity is the identity backend's shape: a fresh home for the
// sandbox user, the caller's home only hidden, a $TMPDIR of the caller's.
func TestPlanIdentity(t *testing.T) {
	fsys := homeSystem("/var/lib/sandgate/home/sandgate-offline/", "/srv/ws/.bashrc")
	p, err := NewPlan(Profile{
		Mode: ModeWorkspace, Workspace: "/srv/ws", Home: "/home/u", TmpDir: "/tmp/alice",
		FreshHome: "/var/lib/sandgate/home/sandgate-offline", Owner: &Owner{UID: 990, GID: 991},
	}, fsys)
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, "ops", render(p), []string{
		"capture #1 /srv/ws",
		"readonly-all",
		"scratch /tmp",
		"tmpfs /tmp 1777 +dir:/tmp/alice",
		"tmpfs /dev/shm 1777",
		"tmpfs /tmp/alice 700 990:991",
		"tmpfs /var/tmp 1777",
		"bind /srv/ws <- #1",
		"tmpfs /home/u/.aws 755 ro",
		"empty-file /home/u/.netrc",
		"tmpfs /home/u/.ssh 755 ro",
		"empty-file /home/u/.cargo/credentials.toml",
		"tmpfs /home/u/.config/gh 755 ro",
		"tmpfs /var/lib/sandgate/home/sandgate-offline 700 990:991",
		"protect /srv/ws/.bashrc",
	})
	if !slices.Contains(p.Writable, "/var/lib/sandgate/home/sandgate-offline") || slices.Contains(p.Writable, "/home/u") {
		t.Errorf("writable = %v", p.Writable)
	}
}

func TestPlanSymlinkedStartupFile(t *testing.T) {
	fsys := system("/home/u/", "/srv/ws/.bashrc -> dotfiles/bashrc", "/srv/ws/dotfiles/bashrc", "/srv/ws/.profile -> /etc/profile", "/etc/profile")
	p, err := NewPlan(Profile{Mode: ModeWorkspace, Workspace: "/srv/ws", Home: "/home/u"}, fsys)
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, "guards", protects(p), []string{"pin /srv/ws/dotfiles", "protect /srv/ws/dotfiles/bashrc"})
	links := map[string]string{}
	for _, w := range p.Watch {
		if w.Link != "" {
			links[w.Path] = w.Link
		}
	}
	if links["/srv/ws/.bashrc"] != "dotfiles/bashrc" || links["/srv/ws/.profile"] != "/etc/profile" {
		t.Errorf("symbolic links watched: %v", links)
	}
	// After a run that replaced one link and created a missing file:
	fsys.add("/srv/ws/.bashrc")
	fsys.add("/srv/ws/.zshrc")
	changed := p.Changed(fsys)
	diffLines(t, "changed", changed, []string{"/srv/ws/.bashrc", "/srv/ws/.zshrc"})
}

func TestPlanHideAndUnhide(t *testing.T) {
	fsys := homeSystem("/home/u/proj/secrets/key", "/home/u/proj/secrets/pub", "/home/u/.config/gh/hosts.yml")
	pr := homeProfile()
	pr.Hide = []string{"~/proj/secrets", "/srv/missing"}
	pr.Unhide = []string{"~/proj/secrets/pub", "~/.config/gh", "~/.ssh"}
	p, err := NewPlan(pr, fsys)
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, "hidden", p.Hidden, []string{"/home/u/.aws", "/home/u/.cargo/credentials.toml", "/home/u/.netrc", "/home/u/proj/secrets"})
	lines := render(p)
	i := slices.Index(lines, "capture #4 /home/u/proj/secrets/pub")
	if i < 0 || lines[i+1] != "tmpfs /home/u/proj/secrets 755 ro +file:/home/u/proj/secrets/pub" ||
		!slices.Contains(lines, "bind /home/u/proj/secrets/pub <- #4 ro") {
		t.Errorf("unhide inside the workspace:\n%s", strings.Join(lines, "\n"))
	}
	if k := slices.Index(lines, "bind /home/u/proj <- #1"); k < 0 || k > i {
		t.Errorf("the workspace is bound after its hidden part is captured:\n%s", strings.Join(lines, "\n"))
	}
}

func TestPlanHostAndRoundTrip(t *testing.T) {
	p, err := NewPlan(Profile{Mode: ModeHost}, newFakeFS())
	if err != nil || !p.Unrestricted() || len(p.Ops) != 0 {
		t.Fatalf("host plan = %+v, %v", p, err)
	}
	p, err = NewPlan(homeProfile(), homeSystem())
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := UnmarshalPlan(b)
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, "round trip", render(q), render(p))
	// Planning is deterministic.
	for i := 0; i < 5; i++ {
		r, _ := NewPlan(homeProfile(), homeSystem())
		diffLines(t, "again", render(r), render(p))
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeWorkspace, ModeReadonly, ModeHost} {
		if got, err := ParseMode(m.String()); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMode("container"); err == nil {
		t.Error("ParseMode accepted an unknown mode")
	}
}

// BenchmarkNewPlan plans a workspace of 2,000 directories and 20,000
// files on the real file system (the walk for git repositories and code
// files dominates).
func BenchmarkNewPlan(b *testing.B) {
	ws := b.TempDir()
	for i := 0; i < 2000; i++ {
		d := filepath.Join(ws, fmt.Sprintf("pkg%d/sub%d", i/20, i%20))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 10; j++ {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d.go", j)), nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	pr := Profile{Mode: ModeWorkspace, Workspace: filepath.ToSlash(ws)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := NewPlan(pr, OSFS{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(p.Scanned), "dirs")
	}
}

func TestPlanNotWalked(t *testing.T) {
	fsys := system("/home/u/", "/srv/ws/node_modules/pkg/.envrc", "/srv/ws/app/.envrc")
	p, err := NewPlan(Profile{Mode: ModeWorkspace, Workspace: "/srv/ws", Home: "/home/u"}, fsys)
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, "guards", protects(p), []string{"pin /srv/ws/app", "protect /srv/ws/app/.envrc"})
}

func TestPlanRootHome(t *testing.T) {
	p, err := NewPlan(Profile{Mode: ModeWorkspace, Workspace: "/srv/ws", Home: "/"}, system("/srv/ws/", "/.ssh/id_rsa"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range p.Ops {
		if o.Kind == OpOverlay {
			t.Errorf("a home of / became copy-on-write: %v", render(p))
		}
	}
	if slices.Contains(p.Writable, "/") || !slices.Contains(p.Hidden, "/.ssh") {
		t.Errorf("writable %v, hidden %v", p.Writable, p.Hidden)
	}
}

// TestPlanShadowed: the walk skips what a hidden path or a private tmpfs
// covers inside the workspace, but not a workspace inside a hidden path.
func TestPlanShadowed(t *testing.T) {
	fsys := system("/home/u/.config/gh/ws/.envrc", "/home/u/.config/gh/ws/secret/.envrc", "/home/u/.config/gh/ws/tmp/.envrc")
	p, err := NewPlan(Profile{
		Mode: ModeWorkspace, Workspace: "/home/u/.config/gh/ws", Home: "/home/u",
		Hide: []string{"/home/u/.config/gh/ws/secret"}, TmpDir: "/home/u/.config/gh/ws/tmp",
	}, fsys)
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, "guards", protects(p), []string{"protect /home/u/.config/gh/ws/.envrc"})
}
