//go:build linux

package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/fsview"
)

// gitTrapScript is CMD planting a trap for the user's next git command in
// a repository it makes: an executable hook and core.fsmonitor (a local
// `git init`, no network).
const gitTrapScript = `git init -q x && printf '#!/bin/sh\necho trap\n' > x/.git/hooks/post-checkout &&
chmod +x x/.git/hooks/post-checkout && git -C x config core.fsmonitor 'echo trap'`

// checkGitTrap runs gitTrapScript with spec (its View's workspace ws, its
// Dir ws) and checks that after the run the hook is not executable and
// the findings name the hook (disarmed) and the fsmonitor key.
func checkGitTrap(t *testing.T, spec Spec, ws string) {
	t.Helper()
	x := filepath.Join(ws, "x")
	t.Cleanup(func() { os.RemoveAll(x) })
	spec.Args = []string{"/bin/sh", "-c", gitTrapScript}
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stdout %q stderr %q", o.res, o.err, o.stdout, o.stderr)
	}
	hook, cfg := filepath.Join(x, ".git/hooks/post-checkout"), filepath.Join(x, ".git/config")
	if fi, err := os.Stat(hook); err != nil || fi.Mode()&0o111 != 0 {
		t.Errorf("after the run the hook is %v (%v), want it not executable", fi.Mode(), err)
	}
	var lines []string
	var hookSeen, keySeen bool
	for _, f := range o.res.ViewFindings {
		s := f.String()
		lines = append(lines, s)
		switch {
		case f.Kind == fsview.FoundHook && f.Path == hook && f.Disarmed && strings.Contains(s, "chmod +x "+hook):
			hookSeen = true
		case f.Kind == fsview.FoundConfigKey && f.Path == cfg && f.Key == "core.fsmonitor" &&
			strings.Contains(s, "git config --file "+cfg+" --unset core.fsmonitor"):
			keySeen = true
		}
	}
	if !hookSeen || !keySeen || len(lines) != 2 {
		t.Errorf("findings (want the disarmed hook and core.fsmonitor only):\n%s", strings.Join(lines, "\n"))
	}
	if len(o.res.ViewChanged) != 0 {
		t.Errorf("ViewChanged = %q, want none", o.res.ViewChanged)
	}
}

// TestFileSystemViewGitTrap runs the git-init trap on the netns backend.
func TestFileSystemViewGitTrap(t *testing.T) {
	f := newViewFixture(t)
	spec := helperSpec("fsops")
	spec.Network, spec.Dir, spec.View = NetworkNone, f.ws, f.profile(f.ws, testBinary())
	checkGitTrap(t, spec, f.ws)
}
