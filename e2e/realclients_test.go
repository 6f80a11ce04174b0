//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientDirs is what one real-client test runs in: a project directory (the
// run's working directory, hence its workspace) and a HOME, both outside
// /tmp like a real user's, and a snapshot of that HOME taken before the run.
type clientDirs struct {
	project, home string
	before        map[string]string // path under home → kind, size and mode
}

// newClientDirs makes an empty project directory and a HOME holding a few
// ordinary files (so that the snapshot has something to compare), under the
// run's binary directory, which is outside /tmp.
func newClientDirs(t *testing.T) *clientDirs {
	t.Helper()
	base, err := os.MkdirTemp(binDir, "client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	d := &clientDirs{project: filepath.Join(base, "project"), home: filepath.Join(base, "home")}
	for _, dir := range []string{d.project, filepath.Join(d.home, ".cache"), filepath.Join(d.home, ".config")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d.home, ".profile"), []byte("# sgtest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.before = snapshot(t, d.home)
	return d
}

// snapshot lists every file and directory under root.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		size := fi.Size()
		if fi.IsDir() {
			size = 0 // a directory's size changes with its entries, which are listed anyway
		}
		m[rel] = fi.Mode().String() + " " + strconv.FormatInt(size, 10)
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", root, err)
	}
	return m
}

// homeUnchanged fails the test when the real HOME gained, lost or changed
// anything during the run.
func (d *clientDirs) homeUnchanged(t *testing.T) {
	t.Helper()
	after := snapshot(t, d.home)
	for p, v := range after {
		if old, ok := d.before[p]; !ok {
			t.Errorf("the run wrote %s into the real HOME", filepath.Join(d.home, p))
		} else if old != v {
			t.Errorf("the run changed %s in the real HOME: %s → %s", filepath.Join(d.home, p), old, v)
		}
	}
	for p := range d.before {
		if _, ok := after[p]; !ok {
			t.Errorf("the run removed %s from the real HOME", filepath.Join(d.home, p))
		}
	}
}

// run runs `sandgate run FLAGS -- CMD` as root in the host namespace, in
// the project directory with the test's HOME, and returns its outcome.
func (d *clientDirs) run(t *testing.T, w *world, flags []string, cmd ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := w.hostCmd(ctx, nil, d.home, sandgateArgv(flags, cmd...)...)
	c.Dir = d.project
	return finish(t, c)
}

// serveRemoteTLS serves h over HTTPS (the world's certificate) on a fresh
// port of the remote's service addresses, v4 and v6, and returns the port.
func serveRemoteTLS(t *testing.T, w *world, h http.Handler) string {
	t.Helper()
	var ls []net.Listener
	err := w.remote.Do(func() error {
		for _, a := range []string{net.JoinHostPort(remoteV4, "0"), net.JoinHostPort(remoteV6, "0")} {
			if len(ls) > 0 {
				_, port, _ := net.SplitHostPort(ls[0].Addr().String())
				a = net.JoinHostPort(remoteV6, port)
			}
			l, err := net.Listen("tcp", a)
			if err != nil {
				return err
			}
			ls = append(ls, l)
		}
		return nil
	})
	if err != nil {
		for _, l := range ls {
			l.Close()
		}
		t.Fatalf("listening in the remote: %v", err)
	}
	for _, l := range ls {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(tls.NewListener(l, w.serverTLS.Clone()))
		t.Cleanup(func() { srv.Close() })
	}
	_, port, _ := net.SplitHostPort(ls[0].Addr().String())
	return port
}

// needTools fails the test when a client it runs is not installed.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/install-test-deps.sh installs it): %v", tool, err)
		}
	}
}

// hostRun runs a setup command on the host (outside any sandbox), failing
// the test when it fails.
func hostRun(t *testing.T, dir string, argv ...string) {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = dir
	c.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, b)
	}
}

// wantOutput checks that the run succeeded and printed every marker.
func wantOutput(t *testing.T, o outcome, markers ...string) {
	t.Helper()
	if o.code != 0 {
		t.Errorf("the client failed under sandgate: exit %d\nstderr:\n%s", o.code, o.stderr)
	}
	for _, m := range markers {
		if !strings.Contains(o.stdout, m) {
			t.Errorf("stdout lacks %q", m)
		}
	}
}

// wantFile checks that path (in the workspace) exists and contains s.
func wantFile(t *testing.T, path, s string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("the workspace lacks the client's result: %v", err)
		return
	}
	if !strings.Contains(string(b), s) {
		t.Errorf("%s lacks %q: %q", path, s, b)
	}
}
