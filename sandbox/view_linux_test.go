//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/fsview"
)

// fsopsHelper is the "fsops" helper: each argument is OP=PATH[:VALUE],
// with OP one of write (PATH gets VALUE, or "sandboxed"), read, or sleep
// (PATH is a duration). It prints "OP PATH ok [content]" or the errno.
func fsopsHelper(args []string) int {
	for _, a := range args {
		op, arg, _ := strings.Cut(a, "=")
		switch op {
		case "write":
			p, val, ok := strings.Cut(arg, ":")
			if !ok {
				val = "sandboxed"
			}
			fmt.Printf("write %s %s\n", p, errName(os.WriteFile(p, []byte(val), 0o644)))
		case "read":
			b, err := os.ReadFile(arg)
			if err != nil {
				fmt.Printf("read %s %s\n", arg, errName(err))
			} else {
				fmt.Printf("read %s ok %q\n", arg, b)
			}
		case "sleep":
			d, _ := time.ParseDuration(arg)
			time.Sleep(d)
		}
	}
	return 0
}

// viewFixture is a caller's home (credential store, shell startup file)
// with a project (a git repository) in it, and a directory outside every
// writable root, under /var/lib (not under /tmp, which is private in the
// view).
type viewFixture struct {
	base, home, ws, outside string
}

func newViewFixture(t *testing.T) *viewFixture {
	t.Helper()
	base, err := os.MkdirTemp("/var/lib", "sandgate-view-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &viewFixture{base: base, home: filepath.Join(base, "home"), outside: filepath.Join(base, "outside")}
	f.ws = filepath.Join(f.home, "proj")
	for name, content := range map[string]string{
		"home/.bashrc": "orig bashrc\n", "home/.ssh/id_ed25519": "SECRET KEY\n",
		"home/.ssh/known_hosts": "known host\n", "home/.config/sandgate/config.toml": "[network]\n",
		"outside/file.txt": "outside\n",
	} {
		writeFixture(t, filepath.Join(base, name), content)
	}
	populateWorkspace(t, f.ws)
	return f
}

// writeFixture writes a file of a fixture, with its directories.
func writeFixture(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// populateWorkspace makes ws a project: a git repository with a shell
// startup file.
func populateWorkspace(t *testing.T, ws string) {
	t.Helper()
	for name, content := range map[string]string{
		"main.go": "package main\n", ".bashrc": "ws bashrc\n", ".git/config": "[core]\n",
		".git/HEAD": "ref: refs/heads/main\n", ".git/hooks/.keep": "", ".git/objects/.keep": "", ".git/refs/.keep": "",
	} {
		writeFixture(t, filepath.Join(ws, name), content)
	}
}

// profile is the default view (ModeWorkspace) of a run in ws as the
// fixture's caller, with exe (the helper) visible.
func (f *viewFixture) profile(ws, exe string) *fsview.Profile {
	return &fsview.Profile{Mode: fsview.ModeWorkspace, Workspace: ws, Home: f.home,
		ConfigPaths: []string{filepath.Join(f.home, ".config/sandgate")},
		Executable:  exe, Command: exe, Unhide: []string{filepath.Join(f.home, ".ssh/known_hosts")}}
}

// fileIs checks from the host that p holds want ("" with absent: does not
// exist).
func fileIs(t *testing.T, p, want string, absent bool) {
	t.Helper()
	b, err := os.ReadFile(p)
	switch {
	case absent && !errors.Is(err, os.ErrNotExist):
		t.Errorf("%s exists on the host after the run (%q, %v)", p, b, err)
	case !absent && err != nil:
		t.Errorf("%s on the host: %v", p, err)
	case !absent && string(b) != want:
		t.Errorf("%s on the host holds %q, want %q", p, b, want)
	}
}

// checkView runs the fsops helper with spec (whose View and Dir are set
// for the fixture, workspace ws) and checks each rule inside and, from the
// host, afterwards.
func checkView(t *testing.T, spec Spec, f *viewFixture, ws string) {
	t.Helper()
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	tmpName := "/tmp/sandgate-view-test-" + randHex(6)
	p := func(rel string) string { return filepath.Join(f.home, rel) }
	spec.Args = append(spec.Args,
		"write="+filepath.Join(ws, "new.txt"), "write="+filepath.Join(f.outside, "file.txt"),
		"write="+p(".bashrc"), "write="+filepath.Join(ws, ".bashrc"), "write="+filepath.Join(ws, ".profile"),
		"write="+filepath.Join(ws, ".git/config"), "write="+filepath.Join(ws, ".git/hooks/post-checkout"),
		"write=/etc/hosts", "write="+p(".config/sandgate/config.toml"),
		"read="+p(".ssh/id_ed25519"), "read="+p(".ssh/known_hosts"),
		"write="+tmpName, "read="+tmpName, "read="+filepath.Join(ws, "new.txt"))
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout,
		"write "+filepath.Join(ws, "new.txt")+" ok\n",
		"write "+filepath.Join(f.outside, "file.txt")+" EROFS\n",
		"write "+filepath.Join(ws, ".bashrc")+" EROFS\n",
		"write "+filepath.Join(ws, ".git/config")+" EROFS\n",
		"write "+filepath.Join(ws, ".git/hooks/post-checkout")+" EROFS\n",
		"write /etc/hosts EROFS\n",
		"write "+p(".config/sandgate/config.toml")+" EROFS\n",
		"read "+p(".ssh/id_ed25519")+" ENOENT\n",
		"read "+p(".ssh/known_hosts")+" ok \"known host\\n\"\n",
		"write "+tmpName+" ok\n", "read "+tmpName+" ok \"sandboxed\"\n",
		"read "+filepath.Join(ws, "new.txt")+" ok \"sandboxed\"\n")
	if !strings.Contains(o.stdout, "write "+p(".bashrc")+" EROFS\n") && !strings.Contains(o.stdout, "write "+p(".bashrc")+" EACCES\n") {
		t.Errorf("writing the home's .bashrc was not refused:\n%s", o.stdout)
	}
	// From the host: only the workspace changed.
	fileIs(t, filepath.Join(ws, "new.txt"), "sandboxed", false)
	fileIs(t, filepath.Join(f.outside, "file.txt"), "outside\n", false)
	fileIs(t, p(".bashrc"), "orig bashrc\n", false)
	fileIs(t, filepath.Join(ws, ".bashrc"), "ws bashrc\n", false)
	// A never-writable file that did not exist in a writable root cannot
	// be pinned: the run reports that it appeared.
	if !slices.Contains(o.res.ViewChanged, filepath.Join(ws, ".profile")) {
		t.Errorf("ViewChanged = %q, want %s in it", o.res.ViewChanged, filepath.Join(ws, ".profile"))
	}
	os.Remove(filepath.Join(ws, ".profile"))
	fileIs(t, filepath.Join(ws, ".git/config"), "[core]\n", false)
	fileIs(t, filepath.Join(ws, ".git/hooks/post-checkout"), "", true)
	fileIs(t, p(".config/sandgate/config.toml"), "[network]\n", false)
	fileIs(t, "/etc/hosts", string(hosts), false)
	fileIs(t, tmpName, "", true)
}

// TestFileSystemView runs the default view on the netns backend, as the
// caller (root here: the hosts-file case with a root caller).
func TestFileSystemView(t *testing.T) {
	f := newViewFixture(t)
	spec := helperSpec("fsops")
	spec.Network = NetworkNone
	spec.Dir = f.ws
	spec.View = f.profile(f.ws, testBinary())
	checkView(t, spec, f, f.ws)
	// A home write goes to the run's copy-on-write home, not the host's.
	spec = helperSpec("fsops", "write="+filepath.Join(f.home, "cache.txt"), "read="+filepath.Join(f.home, "cache.txt"))
	spec.Network, spec.Dir, spec.View = NetworkNone, f.ws, f.profile(f.ws, testBinary())
	o := sandboxRun(t, spec)
	mustContain(t, o.stdout, "write "+filepath.Join(f.home, "cache.txt")+" ok\n", "read "+filepath.Join(f.home, "cache.txt")+" ok \"sandboxed\"\n")
	fileIs(t, filepath.Join(f.home, "cache.txt"), "", true)
}

// TestFileSystemViewConcurrentRuns checks that two runs at the same time
// each have a /tmp of their own.
func TestFileSystemViewConcurrentRuns(t *testing.T) {
	f := newViewFixture(t)
	shared := "/tmp/sandgate-view-shared-" + randHex(6)
	var wg sync.WaitGroup
	outs := make([]outcome, 2)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := helperSpec("fsops", fmt.Sprintf("write=%s:run%d", shared, i), "sleep=300ms", "read="+shared)
			spec.Network, spec.Dir, spec.View = NetworkNone, f.ws, f.profile(f.ws, testBinary())
			outs[i] = sandboxRun(t, spec)
		}()
	}
	wg.Wait()
	for i, o := range outs {
		mustContain(t, o.stdout, fmt.Sprintf("read %s ok \"run%d\"\n", shared, i))
	}
	fileIs(t, shared, "", true)
}

// TestFileSystemViewBadPath checks that a path the view cannot plan fails
// the run before anything starts, naming it.
func TestFileSystemViewBadPath(t *testing.T) {
	f := newViewFixture(t)
	spec := helperSpec("fsops")
	spec.Network, spec.Dir, spec.View = NetworkNone, f.ws, f.profile(f.ws, testBinary())
	spec.View.Write = []string{filepath.Join(f.base, "missing")}
	_, err := Run(t.Context(), spec)
	var pe *fsview.PathError
	if !errors.As(err, &pe) || pe.Kind != fsview.NotExist || pe.Path != filepath.Join(f.base, "missing") {
		t.Fatalf("Run: %v, want a *fsview.PathError for the missing --write path", err)
	}
}

func (w *idWorld) testFileSystemView(t *testing.T) {
	f := newViewFixture(t)
	populateWorkspace(t, w.work)
	defer func() {
		for _, n := range []string{"main.go", ".bashrc", ".profile", ".git", "new.txt"} {
			os.RemoveAll(filepath.Join(w.work, n))
		}
	}()
	spec := w.spec("fsops")
	spec.View = f.profile(w.work, w.bin)
	checkView(t, spec, f, w.work)
	t.Run("GitTrap", func(t *testing.T) {
		spec := w.spec("fsops")
		spec.View = f.profile(w.work, w.bin)
		checkGitTrap(t, spec, w.work)
	})
	// The sandbox user's home is the run's own: empty at start, gone at
	// exit, never shared between runs.
	home := filepath.Join(w.opts.StateDir, "home", w.names[0])
	spec = w.spec("fsops", "read="+filepath.Join(home, "planted"), "write="+filepath.Join(home, ".npmrc"))
	spec.View = f.profile(w.work, w.bin)
	if err := os.WriteFile(filepath.Join(home, "planted"), []byte("from an earlier run"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(home, "planted"))
	o := sandboxRun(t, spec)
	mustContain(t, o.stdout, "read "+filepath.Join(home, "planted")+" ENOENT\n", "write "+filepath.Join(home, ".npmrc")+" ok\n")
	fileIs(t, filepath.Join(home, ".npmrc"), "", true)
	// Two runs at the same time: each its own home and /tmp.
	var wg sync.WaitGroup
	outs := make([]outcome, 2)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := w.spec("fsops", fmt.Sprintf("write=%s:run%d", filepath.Join(home, ".gitconfig"), i),
				fmt.Sprintf("write=/tmp/shared:run%d", i), "sleep=300ms",
				"read="+filepath.Join(home, ".gitconfig"), "read=/tmp/shared")
			spec.View = f.profile(w.work, w.bin)
			outs[i] = sandboxRun(t, spec)
		}()
	}
	wg.Wait()
	for i, o := range outs {
		mustContain(t, o.stdout, fmt.Sprintf("read %s ok \"run%d\"\n", filepath.Join(home, ".gitconfig"), i),
			fmt.Sprintf("read /tmp/shared ok \"run%d\"\n", i))
	}
	fileIs(t, filepath.Join(home, ".gitconfig"), "", true)
}
