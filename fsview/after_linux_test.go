package fsview

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDisarm: a regular file of the caller's loses its execute bits; a
// symbolic link (as the file, or on the way), another uid's file, a file
// with other hard links and a FIFO are refused and left as they are.
func TestDisarm(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	for _, n := range []string{"hook", "target", "linked", "real/hook"} {
		if err := os.MkdirAll(filepath.Dir(p(n)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p(n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must(t, syscall.Chmod(p("hook"), 0o4755)) // other bits are kept
	must(t, os.Symlink(p("target"), p("link")))
	must(t, os.Symlink(p("real"), p("via")))
	must(t, os.Link(p("linked"), p("linked2")))
	must(t, exec.Command("mkfifo", p("fifo")).Run())
	uid := os.Getuid()
	if err := Disarm(p("hook"), uid); err != nil {
		t.Fatalf("Disarm: %v", err)
	}
	if fi, _ := os.Stat(p("hook")); fi.Mode()&0o111 != 0 || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o644 {
		t.Errorf("disarmed hook has mode %v, want u+s and rw-r--r--", fi.Mode())
	}
	for _, c := range []struct {
		path string
		uids []int
		want string
	}{
		{p("link"), []int{uid}, "not a regular file"},
		{p("via/hook"), []int{uid}, "via"},
		{p("target"), []int{uid + 1}, "owned by uid"},
		{p("linked"), []int{uid}, "hard links"},
		{p("fifo"), []int{uid}, "not a regular file"},
		{"relative", []int{uid}, "not an absolute path"},
	} {
		if err := Disarm(c.path, c.uids...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Disarm(%s): %v, want an error with %q", c.path, err, c.want)
		}
	}
	for _, n := range []string{"target", "real/hook", "linked"} {
		if fi, _ := os.Stat(p(n)); fi.Mode()&0o111 == 0 {
			t.Errorf("%s was disarmed through a refusal: %v", n, fi.Mode())
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStampChangeTime: setting a directory's modification time back after
// adding a name to it does not hide the change (its change time moved).
func TestStampChangeTime(t *testing.T) {
	dir := t.TempDir()
	fi, err := os.Lstat(dir)
	must(t, err)
	before := stampOf(fi)
	time.Sleep(30 * time.Millisecond) // more than one tick of the file clock
	must(t, os.WriteFile(filepath.Join(dir, ".envrc"), nil, 0o644))
	must(t, os.Chtimes(dir, fi.ModTime(), fi.ModTime()))
	fi, err = os.Lstat(dir)
	must(t, err)
	after := stampOf(fi)
	if after.mtime != before.mtime {
		t.Fatalf("the modification time was not set back: %d, %d", before.mtime, after.mtime)
	}
	if after == before || after.ctime == 0 {
		t.Errorf("the stamp did not change: %+v", after)
	}
}

// TestAfterRunGitInit is the trap of a `git init` on the real file
// system, without a sandbox (the sandbox tests run it inside both
// backends): a hook and core.fsmonitor in a new repository.
func TestAfterRunGitInit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	ws := t.TempDir()
	must(t, os.WriteFile(filepath.Join(ws, "main.go"), nil, 0o644))
	p, err := NewPlan(Profile{Mode: ModeWorkspace, Workspace: ws}, OSFS{})
	must(t, err)
	x := filepath.Join(ws, "x")
	hook := filepath.Join(x, ".git/hooks/post-checkout")
	script := `git init -q "$1" && printf '#!/bin/sh\necho trap\n' > "$2" && chmod +x "$2" && git -C "$1" config core.fsmonitor 'echo trap'`
	if out, err := exec.Command("sh", "-c", script, "sh", x, hook).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	changed, found := p.AfterRun(OSFS{}, func(p string) error { return Disarm(p, os.Getuid()) })
	var lines []string
	for _, f := range found {
		lines = append(lines, f.String())
	}
	if len(found) != 2 || !found[0].Disarmed || found[0].Path != hook || found[1].Key != "core.fsmonitor" {
		t.Errorf("findings:\n%s", strings.Join(lines, "\n"))
	}
	if fi, err := os.Stat(hook); err != nil || fi.Mode()&0o111 != 0 {
		t.Errorf("the hook is still executable: %v %v", fi.Mode(), err)
	}
	if slices.ContainsFunc(found, func(f Finding) bool { return strings.HasSuffix(f.Path, ".sample") }) || len(changed) != 0 {
		t.Errorf("samples or changed paths reported: %q, %q", lines, changed)
	}
}
