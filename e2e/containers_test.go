//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildContainer builds the helper that confines a command the way a
// container runtime's defaults would (e2e/internal/container).
func buildContainer(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "container")
	if err := goBuild(root, bin, "./e2e/internal/container"); err != nil {
		t.Fatal(err)
	}
	return bin
}

// inContainer runs argv in the host namespace under the container helper
// with its flags, as root, in dir ("" for the test's own).
func (w *world) inContainer(t *testing.T, helper, dir string, flags []string, argv ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append(append(append([]string{helper}, flags...), "--"), argv...)
	c := w.hostCmd(ctx, nil, newHome(t, nil), full...)
	c.Dir = dir
	return finish(t, c)
}

// TestContainerDefaultSeccomp reproduces Docker's default confinement (and
// Kubernetes' RuntimeDefault seccomp profile): a seccomp filter that
// refuses clone and unshare with CLONE_NEWUSER, and no CAP_SYS_ADMIN nor
// CAP_NET_ADMIN. `sandgate run` exits 125 before CMD runs, saying that a
// seccomp filter refuses user namespaces and what to do about it in a
// container (the docker flags, docs/containers.md) and outside one (the
// identity backend); `sandgate doctor` fails its user namespace check with
// the same diagnosis. With /proc partly masked (Docker's masked paths),
// the run fails the same way, naming the masked paths and the option that
// lifts them. Without the filter and the masks but still without
// CAP_SYS_ADMIN (a pod whose seccomp profile is Unconfined), the default
// run works.
func TestContainerDefaultSeccomp(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	helper := buildContainer(t)
	// The workspace: where CMD's write would land on the host (not under
	// /tmp, which the default view replaces).
	ws, err := os.MkdirTemp(binDir, "ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	marker := filepath.Join(ws, "cmd-ran")

	o := w.inContainer(t, helper, ws, nil, sandgateBin, "run", "--", "touch", marker)
	if o.code != 125 {
		t.Errorf("sandgate run under the default profile: exit %d, want 125", o.code)
	}
	for _, want := range []string{
		"sandbox enforcement unavailable",
		"a seccomp filter confines sandgate itself",
		"CLONE_NEWUSER",
		"--security-opt seccomp=unconfined",
		"--privileged",
		"docs/containers.md",
		"sandgate run --backend identity",
	} {
		if !strings.Contains(o.stderr, want) {
			t.Errorf("sandgate run's message lacks %q:\n%s", want, o.stderr)
		}
	}
	if fileExists(marker) {
		t.Error("CMD ran although enforcement was unavailable")
	}

	o = w.inContainer(t, helper, "", nil, sandgateBin, "doctor", "--json")
	if o.code == 0 {
		t.Errorf("doctor under the default profile exited 0:\n%s", o.stdout)
	}
	var rep doctorReport
	if err := json.Unmarshal([]byte(o.stdout), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s\n%s", err, o.stdout, o.stderr)
	}
	found := false
	for _, c := range rep.Checks {
		if c.Name == "user namespaces" {
			found = true
			if c.OK || !strings.Contains(c.Detail, "a seccomp filter confines sandgate itself") {
				t.Errorf("doctor's user namespace check: ok %v, detail %q; want a failure naming the seccomp filter", c.OK, c.Detail)
			}
		}
	}
	if !found || rep.OK {
		t.Errorf("doctor report ok %v, user namespace check found %v:\n%s", rep.OK, found, o.stdout)
	}

	// No filter, but /proc partly masked as Docker masks it: the netns
	// backend cannot mount the sandbox's /proc, and says so and why.
	o = w.inContainer(t, helper, ws, []string{"-seccomp=false", "-mask-proc"}, sandgateBin, "run", "--", "touch", marker)
	if o.code != 125 {
		t.Errorf("sandgate run with a masked /proc: exit %d, want 125", o.code)
	}
	for _, want := range []string{"mounting /proc", "parts of /proc are hidden under other mounts (/proc/keys", "--security-opt systempaths=unconfined", "procMount Unmasked"} {
		if !strings.Contains(o.stderr, want) {
			t.Errorf("sandgate run's message with a masked /proc lacks %q:\n%s", want, o.stderr)
		}
	}
	if fileExists(marker) {
		t.Error("CMD ran although enforcement was unavailable")
	}

	// seccomp Unconfined, no CAP_SYS_ADMIN: the user namespace gives the
	// sandbox what it needs, and the proxy works.
	cs := []chk{
		succeeds("http", "http://remote.test/").with("sgtest-remote proto=http"),
		fails("tcp", remoteV4+":80"),
	}
	o = w.inContainer(t, helper, ws, []string{"-seccomp=false"}, sandgateArgv([]string{"--no-transparent", "--allow", "remote.test"}, probeArgv(cs)...)...)
	expectProbes(t, o, cs)
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
