//go:build linux

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunGitInitTrap: CMD makes a repository in its workspace and plants a
// hook and core.fsmonitor there for the user's next git command; after the
// run sandgate has made the hook non-executable and says so on stderr,
// naming the hook and the fsmonitor key with the commands to undo or
// remove them.
func TestRunGitInitTrap(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	ws := t.TempDir()
	script := `git init -q x && printf '#!/bin/sh\necho trap\n' > x/.git/hooks/post-checkout &&
chmod +x x/.git/hooks/post-checkout && git -C x config core.fsmonitor 'echo trap'`
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := w.hostCmd(ctx, nil, newHome(t, nil), sandgateArgv([]string{"--backend", "netns", "--network", "none"}, "/bin/sh", "-c", script)...)
	c.Dir = ws
	o := finish(t, c)
	if o.code != 0 {
		t.Fatalf("exit status %d", o.code)
	}
	hook, cfg := filepath.Join(ws, "x/.git/hooks/post-checkout"), filepath.Join(ws, "x/.git/config")
	if fi, err := os.Stat(hook); err != nil || fi.Mode()&0o111 != 0 {
		t.Errorf("the hook is %v (%v) after the run, want it not executable", fi.Mode(), err)
	}
	for _, want := range []string{"sandgate: warning: CMD created the git hook " + hook, "chmod +x " + hook,
		"git config --file " + cfg + " --unset core.fsmonitor"} {
		if !strings.Contains(o.stderr, want) {
			t.Errorf("stderr does not say %q", want)
		}
	}
}
